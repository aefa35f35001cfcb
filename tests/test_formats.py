"""Prompt formats: arc24's output-from-examples-v0/-v1 byte for byte against renderings made by running
arc24's own code (tests/reference/arc24-prompts.json, from ../shared/reference), a user's own format from
a TOML file, answers read back after the format's answer prefix, and the `prompt` command."""

from __future__ import annotations

import json

import pytest

from arc_submit.data.encoders import DEFAULT_ENCODER, MinimalGridEncoder, create
from arc_submit.data.prompts import PromptBuilder, load_format
from arc_submit.data.tasks import parse_challenges
from tests.helpers.cli import ROOT, run_cli

REFERENCE = json.loads((ROOT / "tests" / "reference" / "arc24-prompts.json").read_text())
TASKS = {task.task_id: task for task in parse_challenges(
    {task_id: {"train": entry["train"], "test": [{"input": t["input"]} for t in entry["test"]]}
     for task_id, entry in REFERENCE["tasks"].items()}, "reference")}
SOLUTIONS = {task_id: [t["output"] for t in entry["test"]] for task_id, entry in REFERENCE["tasks"].items()}


@pytest.fixture(scope="module")
def smollm_tokenizer():
    from transformers import AutoTokenizer

    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve

    return AutoTokenizer.from_pretrained(resolve(EMBEDDED_ALIAS).base_dir)


@pytest.mark.parametrize("rendering", REFERENCE["renderings"], ids=lambda r: f"{r['format']}-{r['task']}-{r['test_index']}")
def test_arc24_formats_render_byte_for_byte(smollm_tokenizer, rendering):
    builder = PromptBuilder(smollm_tokenizer, create(REFERENCE["encoder"]), 8192, load_format(rendering["format"]))
    task, index = TASKS[rendering["task"]], rendering["test_index"]
    inference = builder.render_text(task.train, task.test[index].input)
    assert inference.prompt == rendering["inference"]
    training = builder.render_text(task.train, task.test[index].input, SOLUTIONS[task.task_id][index])
    assert training.prompt + training.answer == rendering["training"]
    assert builder.parse(training.answer.split("<|im_end|>")[0]) == SOLUTIONS[task.task_id][index]


@pytest.mark.slow
def test_the_prompt_command_prints_exactly_the_reference(tmp_path):
    rendering = REFERENCE["renderings"][0]
    challenges = tmp_path / "challenges.json"
    challenges.write_text(json.dumps({t: {"train": e["train"], "test": e["test"]} for t, e in REFERENCE["tasks"].items()}))
    settings = ["--set", f'prompt.format="{rendering["format"]}"', "--set", f'prompt.encoder="{REFERENCE["encoder"]}"']
    result = run_cli("prompt", "--challenges", str(challenges), "--task", rendering["task"], "--part", "prompt", *settings)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == rendering["inference"]
    full = run_cli("prompt", "--challenges", str(challenges), "--task", rendering["task"], *settings)
    counts = json.loads(full.stdout.strip().splitlines()[-1])
    assert counts["format"] == rendering["format"] and counts["prompt_tokens"] > 1000 and counts["answer_tokens"] > 50
    assert rendering["inference"] in full.stdout


def test_arc24_formats_need_an_encoder_that_writes_the_prefix(tmp_path):
    with pytest.raises(ValueError, match="starts every answer with '```grid'"):
        load_format("arc24-v1").check_encoder(MinimalGridEncoder())
    result = run_cli("prompt", "--dataset", "arc-agi-1-train", "--task", "007bbfb7", "--set", 'prompt.format="arc24-v0"',
                     "--set", 'prompt.encoder="MinimalGridEncoder()"')
    assert result.returncode == 2 and "starts every answer with" in result.stderr and "Traceback" not in result.stderr


def test_a_users_own_format_from_a_toml_file(smollm_tokenizer, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('system = "Solve it."\nuser = """{% for s in train_samples %}IN {{ s.input }} OUT {{ s.output }}\n'
                    '{% endfor %}TEST {{ test_input }}"""\nassistant = "ANSWER: {{ output }}"\nanswer_prefix = "```grid"\n')
    builder = PromptBuilder(smollm_tokenizer, create(DEFAULT_ENCODER), 8192, load_format(str(path)))
    task = TASKS["017c7c7b"]
    rendered = builder.render_text(task.train[:1], task.test[0].input, SOLUTIONS["017c7c7b"][0])
    encoded = create(DEFAULT_ENCODER).encode
    assert rendered.prompt == (
        "<|im_start|>system\nSolve it.<|im_end|>\n<|im_start|>user\n"
        f"IN {encoded(task.train[0].input)} OUT {encoded(task.train[0].output)}\nTEST {encoded(task.test[0].input)}"
        "<|im_end|>\n<|im_start|>assistant\nANSWER: ```grid")
    assert rendered.answer == encoded(SOLUTIONS["017c7c7b"][0])[len("```grid"):] + "<|im_end|>\n"


def test_the_turns_format_is_arc_submits_text_one_grid_a_turn(smollm_tokenizer):
    """`arc-submit-turns` (the cpu preset's): the default format's instruction and grids, each input a user turn
    and each output an assistant turn of the model's own chat template, so that every output can be a target."""
    from arc_submit.data.prompts import INSTRUCTION

    builder = PromptBuilder(smollm_tokenizer, create(DEFAULT_ENCODER), 8192, load_format("arc-submit-turns"))
    task = TASKS["017c7c7b"]
    rendered = builder.render_text(task.train[:2], task.test[0].input, SOLUTIONS["017c7c7b"][0])
    encoded = create(DEFAULT_ENCODER).encode
    turn = "<|im_start|>{}\n{}<|im_end|>\n".format
    assert rendered.prompt == (
        turn("system", "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        + turn("user", f"{INSTRUCTION}\n\nExample 1 input:\n\n{encoded(task.train[0].input)}")
        + turn("assistant", encoded(task.train[0].output))
        + turn("user", f"Example 2 input:\n\n{encoded(task.train[1].input)}")
        + turn("assistant", encoded(task.train[1].output))
        + turn("user", f"Test input:\n\n{encoded(task.test[0].input)}") + "<|im_start|>assistant\n")
    assert rendered.answer == encoded(SOLUTIONS["017c7c7b"][0]) + "<|im_end|>\n"
    example = builder.fit(task.train[:2], task.test[0].input, SOLUTIONS["017c7c7b"][0], outputs=True)
    assert len(example.output_spans) == 2  # each demonstration's output is a target too (ttft.loss = "outputs")


@pytest.mark.parametrize("text, problem", [
    ('user = "no test input here"\n', "test_input"),
    ('user = "{{ test_input }} {% for s in train_samples %}{{ s.input }}"\n', "template error"),
    ('user = "{{ test_input }}{% for s in train_samples %}{{ s.input }}{% endfor %}"\ncolour = "x"\n', "unknown key 'colour'"),
    ('assistant = "{{ output }}"\n', "no 'user' template"),
    ("user = [\n", "not valid TOML"),
])
def test_a_bad_format_file_is_refused_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as error:
        load_format(str(path))
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="not one of arc-submit"):
        load_format("arc99")
