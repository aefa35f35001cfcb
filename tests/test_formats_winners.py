"""The 2025 winners' formats as their own code renders them: NVARC's multi-turn ChatML over a 16-token
vocabulary and the ARChitects' single-character text, byte for byte (and NVARC's token ids, the
ARChitects' token strings) against tests/reference/{nvarc,architects}-prompts.json (made by running the
teams' code, copied from ../shared/reference), under the views their inference builds too; formats
that a tokenizer cannot say are refused in one line; the TOML template language lays pairs as turns."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from arc_submit.config import PromptConfig
from arc_submit.data.augment import TRANSFORMS, Augmentation
from arc_submit.data.prompts import FORMATS, NVARC_TEMPLATE, PromptBuilder, load_format
from arc_submit.data.encoders import create
from arc_submit.data.tasks import parse_challenges
from arc_submit.errors import UserError
from arc_submit.model.load import prompt_builder
from tests.helpers.cli import ROOT, run_cli
from tests.helpers.tiny_model import build_architects_tokenizer, build_nvarc_tokenizer, build_winner_model

NVARC = json.loads((ROOT / "tests" / "reference" / "nvarc-prompts.json").read_text())
ARCHITECTS = json.loads((ROOT / "tests" / "reference" / "architects-prompts.json").read_text())
TASKS = {task.task_id: task for task in parse_challenges(NVARC["tasks"], "reference")}
assert NVARC["tasks"] == ARCHITECTS["tasks"]


@pytest.fixture(scope="module")
def nvarc():
    return prompt_builder(build_nvarc_tokenizer(), PromptConfig(format="nvarc"))


@pytest.fixture(scope="module")
def architects():
    return prompt_builder(build_architects_tokenizer(), PromptConfig(format="architects"))


def key_augmentation(key: str) -> Augmentation:
    """The augmentation a view key of the teams' arc_loader names: `<id>_<n>[.transpose][.rot90]*
    .permute<10 digits>.ex<order>`, applied left to right (np.transpose, then np.rot90: counter-clockwise);
    colour c becomes the c-th digit of the permutation; train pair i of the view is original pair ex[i]."""
    parts = key.split(".")[1:]
    probe = np.arange(6).reshape(2, 3)
    moved = probe
    for part in parts:
        if part in ("transpose", "rot90"):
            moved = np.transpose(moved) if part == "transpose" else np.rot90(moved)
    transform = next(name for name, apply in TRANSFORMS.items()
                     if apply(probe).shape == moved.shape and (apply(probe) == moved).all())
    permute = next(part for part in parts if part.startswith("permute"))[len("permute"):]
    order = next(part for part in parts if part.startswith("ex"))[len("ex"):]
    return Augmentation(transform, tuple(int(d) for d in permute), tuple(int(d) for d in order))


def rendered(builder: PromptBuilder, task, index: int):
    return builder.render_text(task.train, task.test[index].input, task.test[index].output)


@pytest.mark.parametrize("reference", NVARC["renderings"], ids=lambda r: r["task"])
def test_nvarc_renders_byte_for_byte_with_their_token_ids(nvarc, reference):
    task, index = TASKS[reference["task"]], reference["test_index"]
    text = rendered(nvarc, task, index)
    assert text.prompt == reference["prompt"] and text.answer == reference["answer"]
    example = nvarc.render(task.train, task.test[index].input, task.test[index].output)
    assert example.prompt_ids == reference["prompt_token_ids"] and example.answer_ids == reference["answer_token_ids"]
    training = nvarc.fit(task.train, task.test[index].input, task.test[index].output)  # training text = prompt + answer
    assert training.prompt_ids + training.answer_ids == nvarc._ids(reference["prompt"] + reference["answer"])
    assert nvarc.stop_token_ids == {15} and nvarc.parse(text.answer.removesuffix("<|im_end|>")) == task.test[index].output


@pytest.mark.parametrize("reference", ARCHITECTS["renderings"], ids=lambda r: r["task"])
def test_architects_render_byte_for_byte_with_their_tokens(architects, reference):
    task, index = TASKS[reference["task"]], reference["test_index"]
    text = rendered(architects, task, index)
    assert text.prompt == reference["prompt"] and text.answer == reference["answer"]
    example = architects.render(task.train, task.test[index].input, task.test[index].output)
    tokens = architects.tokenizer.convert_ids_to_tokens
    assert tokens(example.prompt_ids) == reference["prompt_tokens"]  # <s> first, as their tokenizer prepends it
    assert tokens(example.answer_ids) == reference["answer_tokens"]
    assert architects.stop_token_ids == {architects.tokenizer.eos_token_id}


@pytest.mark.parametrize("name, reference, views", [
    ("nvarc", NVARC, [(v["task"], view) for v in NVARC["inference_views"] for view in v["views"]]),
    ("architects", ARCHITECTS, [(v["task"], view) for v in ARCHITECTS["example_views"] for view in v["views"]]),
], ids=["nvarc", "architects"])
def test_their_views_render_as_their_inference_renders_them(nvarc, architects, name, reference, views):
    builder = {"nvarc": nvarc, "architects": architects}[name]
    assert len(views) >= 6
    for task_id, view in views:
        augmented = key_augmentation(view["key"]).apply_task(TASKS[task_id])
        text = rendered(builder, augmented, 0)
        assert (text.prompt, text.answer) == (view["prompt"], view["answer"]), view["key"]


@pytest.mark.slow
def test_the_prompt_command_prints_their_prompt_through_a_model_of_their_kind(tmp_path):
    challenges = tmp_path / "challenges.json"
    challenges.write_text(json.dumps(NVARC["tasks"]))
    for kind, reference in (("nvarc", NVARC), ("architects", ARCHITECTS)):
        model = build_winner_model(tmp_path / kind, kind)
        first = reference["renderings"][0]
        result = run_cli("prompt", "--challenges", str(challenges), "--task", first["task"], "--part", "prompt",
                         "--model", str(model), "--set", f'prompt.format="{kind}"')
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout == first["prompt"]


def test_nvarcs_tokenizer_says_the_format_and_refuses_what_it_cannot(nvarc):
    assert nvarc.unencodable() == []
    with pytest.raises(UserError) as refused:  # arc-submit's format writes spaces and words NVARC never saw
        prompt_builder(build_nvarc_tokenizer(), PromptConfig())
    [line] = refused.value.problems
    assert "prompt format 'arc-submit'" in line and "' ' (refused" in line and "\n" not in line
    with pytest.raises(UserError, match=r"'A' \(refused"):  # the ARChitects' preprompt letters
        prompt_builder(build_nvarc_tokenizer(), PromptConfig(format="architects"))


def test_the_architects_tokenizer_says_its_format_and_names_what_it_would_drop(architects):
    assert architects.unencodable() == []
    with pytest.raises(UserError, match=r"'<' \(dropped\)") as refused:  # ChatML's <|im_start|> would vanish
        prompt_builder(build_architects_tokenizer(), PromptConfig(format="nvarc"))
    assert "prompt format 'nvarc'" in str(refused.value)


def test_their_formats_bring_their_encoder_and_refuse_another():
    assert PromptConfig(format="nvarc").encoder == PromptConfig(format="architects").encoder == "MinimalGridEncoder()"
    assert PromptConfig(format="nvarc", encoder="MinimalGridEncoder()").encoder == "MinimalGridEncoder()"
    with pytest.raises(ValueError, match="prompt.format: prompt format nvarc writes grids .* with encoder MinimalGridEncoder"):
        PromptConfig(format="nvarc", encoder="GridShapeEncoder(MinimalGridEncoder())")


def test_a_toml_format_lays_pairs_as_turns_and_reproduces_nvarc(tmp_path, nvarc):
    path = tmp_path / "turns.toml"
    path.write_text('turns = "pairs"\nuser = "{{ input }}"\nencoder = "MinimalGridEncoder()"\n'
                    f"chat_template = '''{NVARC_TEMPLATE}'''\n")
    mine = PromptBuilder(nvarc.tokenizer, create("MinimalGridEncoder()"), 8192, load_format(str(path)))
    for reference in NVARC["renderings"]:
        task = TASKS[reference["task"]]
        assert rendered(mine, task, 0) == rendered(nvarc, task, 0)
    # a multi-turn format in the tokenizer's own template, with a first-turn instruction and the test turn marked
    path.write_text('turns = "pairs"\nuser = "{% if index == 1 %}Solve.\\n{% endif %}{% if test %}TEST\\n{% endif %}{{ input }}"\n')
    own = PromptBuilder(nvarc.tokenizer, create("MinimalGridEncoder()"), 8192, load_format(str(path)))
    task = TASKS["0d3d703e"]
    prompt = own.render_text(task.train[:2], task.test[0].input).prompt
    assert prompt.startswith("<|im_start|>user\nSolve.\n3") and prompt.count("<|im_start|>user\n") == 3
    assert prompt.endswith("<|im_start|>user\nTEST\n" + "\n".join("".join(map(str, row)) for row in task.test[0].input)
                           + "<|im_end|><|im_start|>assistant\n")
    assert prompt.count("<|im_start|>assistant\n") == 3


@pytest.mark.parametrize("text, problem", [
    ('turns = "pairs"\nuser = "{{ test_input }}"\n', "must write {{ input }}"),
    ('turns = "rows"\nuser = "{{ input }}"\n', "turns = 'rows'"),
    ('turns = "pairs"\nuser = "{{ input }}"\nbos = "yes"\n', "bos must be true or false"),
    ('turns = "pairs"\nuser = "{{ input }}"\nencoder = "NoSuchEncoder()"\n', "encoder"),
    ('turns = "pairs"\nuser = "{{ input }}"\nchat_template = "{% for m in messages %}"\n', "template error"),
])
def test_a_bad_multi_turn_format_is_refused_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(problem)) as error:
        load_format(str(path))
    assert str(path) in str(error.value)


def test_every_named_format_is_listed_in_the_config_help():
    from arc_submit.config import PromptConfig as Config
    from dataclasses import fields

    help_text = next(f.metadata["help"] for f in fields(Config) if f.name == "format")
    assert all(name in help_text for name in FORMATS)


@pytest.mark.parametrize("name", ["nvarc", "architects"])
def test_every_output_is_found_for_the_loss_as_the_teams_label_it(nvarc, architects, name):
    from arc_submit.model.training import IGNORE_INDEX, collate

    builder = {"nvarc": nvarc, "architects": architects}[name]
    end = "<|im_end|>" if name == "nvarc" else "\n</s>"
    task = TASKS["0d3d703e"]
    example = builder.fit(task.train[:3], task.train[3].input, task.train[3].output, outputs=True)
    assert len(example.output_spans) == 3
    decode = lambda ids: builder.tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    for (start, stop), pair in zip(example.output_spans, task.train[:3]):
        assert decode(example.prompt_ids[start:stop]) == builder.encoder.encode(pair.output) + end
    assert builder.fit(task.train[:3], task.train[3].input, task.train[3].output).output_spans == ()
    batch = collate([example], pad_id=0)
    labelled = (batch["labels"][0] != IGNORE_INDEX).nonzero().squeeze(1).tolist()
    spans = [i for start, stop in example.output_spans for i in range(start, stop)]
    answer = list(range(len(example.prompt_ids), example.length))
    assert labelled == spans + answer
    assert batch["labels"][0, labelled].tolist() == batch["input_ids"][0, labelled].tolist()


def test_the_loss_on_every_output_needs_a_multi_turn_format(tmp_path):
    from arc_submit.config import TTFTConfig, load_config
    from arc_submit.model.training import Trainer, config_stream
    from tests.helpers.tiny_model import build_styled_tokenizer

    with pytest.raises(UserError, match="ttft.loss = 'outputs' .* prompt.format 'arc-submit' puts the task in one message"):
        load_config("cpu", ["ttft.loss='outputs'", "prompt.format='arc-submit'"])
    assert load_config("cpu", ["ttft.loss='outputs'", "prompt.format='nvarc'"]).ttft.loss == "outputs"
    # auto (the cpu preset's): every output with a format of one turn per grid, the answer with one message;
    # resolved when the config loads, so the run's config.toml says which
    assert load_config("cpu").ttft.loss == "outputs" and load_config("cpu").prompt.format == "arc-submit-turns"
    assert load_config("cpu", ["prompt.format='arc-submit'"]).ttft.loss == "answer"
    assert load_config(None, ["ttft.loss='auto'", "prompt.format='architects'"]).ttft.loss == "outputs"
    # a template that writes earlier answer turns otherwise than the last is refused before any task
    path = tmp_path / "qwen3-turns.toml"
    path.write_text('turns = "pairs"\nuser = "{{ input }}"\nassistant = "{{ output }}\\n"\n')
    config = load_config("cpu", ["ttft.loss='outputs'", f"prompt.format='{path}'"])
    builder = prompt_builder(build_styled_tokenizer("qwen3"), config.prompt)
    task = TASKS["0d3d703e"]
    example = builder.fit(task.train[:2], task.train[2].input, task.train[2].output, outputs=True)
    assert len(example.output_spans) == 2  # Qwen3's reasoning block goes to the last turn only: found all the same
    Trainer(config.ttft, builder, pad_id=0)
    # a TTFTConfig made without a Config (auto unresolved) trains as the format allows, both ways
    stream = config_stream([task], builder, np.random.default_rng(0), TTFTConfig(loss="auto"))
    assert len(next(stream).output_spans) >= 1
    one_message = prompt_builder(build_styled_tokenizer("qwen3"), load_config(None).prompt)
    assert next(config_stream([task], one_message, np.random.default_rng(0), TTFTConfig(loss="auto"))).output_spans == ()
    broken = tmp_path / "broken.toml"  # the assistant text differs by position: turns cannot be found
    broken.write_text('turns = "pairs"\nuser = "{{ input }}"\nchat_template = """{% for m in messages %}'
                      '{% if m.role == \'assistant\' and not loop.last %}X{% endif %}{{ m.content }}|{% endfor %}'
                      '{% if add_generation_prompt %}>{% endif %}"""\n')
    config = load_config("cpu", ["ttft.loss='outputs'", f"prompt.format='{broken}'"])
    with pytest.raises(UserError, match="ttft.loss = 'outputs': prompt format broken: the chat template writes"):
        Trainer(config.ttft, prompt_builder(build_styled_tokenizer("qwen3"), config.prompt), pad_id=0)
