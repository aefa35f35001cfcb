"""Prompts: the model's chat template, answer masking, fitting max_seq_len, and decode+invert of answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_submit.data.augment import draw
from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.prompts import PromptBuilder
from arc_submit.predict.candidates import decode_candidate
from arc_submit.predict.sampler import Completion
from tests.conftest import grids, make_task
from tests.tiny_model import build_tokenizer

TOKENIZER = build_tokenizer()
ENCODER = create(DEFAULT_ENCODER)


def builder(max_seq_len: int = 4096) -> PromptBuilder:
    return PromptBuilder(TOKENIZER, ENCODER, max_seq_len)


def test_prompt_uses_the_chat_template_and_answer_is_the_encoded_grid():
    task = make_task()
    example = builder().render(task.train, task.test[0].input, task.test[0].output)
    prompt = TOKENIZER.decode(example.prompt_ids)
    assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("<|im_start|>assistant\n")
    assert ENCODER.encode(task.train[0].input) in prompt and ENCODER.encode(task.test[0].input) in prompt
    answer = TOKENIZER.decode(example.answer_ids)
    assert answer.startswith(ENCODER.encode([[7, 6, 5]])) and "<|im_end|>" in answer
    assert example.n_train == 3


def test_fit_drops_train_pairs_from_the_end_until_it_fits():
    task = make_task(n_train=5)
    full = builder().render(task.train, task.test[0].input)
    two = builder().render(task.train[:2], task.test[0].input)
    fitted = builder(max_seq_len=two.length + 10).fit(task.train, task.test[0].input)
    assert fitted.n_train == 2 and fitted.prompt_ids == two.prompt_ids and full.length > fitted.length
    assert builder(max_seq_len=64).fit(task.train, task.test[0].input) is None


def test_fit_keeps_room_for_the_answer():
    task = make_task(n_train=3)
    full = builder().render(task.train, task.test[0].input)
    assert builder(full.length + 5).fit(task.train, task.test[0].input, reserve=10).n_train < 3


def test_system_prompt_is_the_first_message():
    with_system = PromptBuilder(TOKENIZER, ENCODER, 4096, system_prompt="Solve ARC.")
    prompt = TOKENIZER.decode(with_system.render(make_task().train, [[1]]).prompt_ids)
    assert prompt.startswith("<|im_start|>system\nSolve ARC.<|im_end|>")


@settings(max_examples=80, deadline=None)
@given(grid=grids(max_side=12), seed=st.integers(0, 10_000))
def test_decode_and_invert_of_sampled_text_round_trips(grid, seed):
    """What the model writes about an augmented task maps back to the original task's grid."""
    augmentation = draw(np.random.default_rng(seed), 3, keep_background=False)
    text = ENCODER.encode(augmentation.apply_grid(grid)) + "\n"
    candidate = decode_candidate(Completion(text, 10, -1.5, "stop"), builder(), augmentation)
    assert candidate.grid == grid and candidate.text is None and candidate.logprob == -1.5


def test_unparsable_or_truncated_text_is_unanswered_with_its_text_kept():
    augmentation = draw(np.random.default_rng(0), 2)
    prose = decode_candidate(Completion("The answer is 968.", 5, -3.0, "stop"), builder(), augmentation)
    assert prose.grid == [] and prose.text == "The answer is 968." and "fenced" in prose.reason
    cut = decode_candidate(Completion(ENCODER.encode([[1]]), 5, -3.0, "length"), builder(), augmentation)
    assert cut.grid == [] and "max_new_tokens" in cut.reason


def test_answer_tokens_counts_the_answer_turn():
    count = builder().answer_tokens([[1, 2], [3, 4]])
    assert count == len(ENCODER.encode([[1, 2], [3, 4]])) + 2  # one token per character, then <|im_end|> and \n


def test_single_pair_task_still_trains():
    from arc_submit.model.training import leave_one_out

    task = make_task(n_train=1)
    example = leave_one_out(task, builder(), np.random.default_rng(0), {})
    assert example is not None and example.n_train == 1


def test_no_answer_that_fits_30x30_is_cut_by_the_automatic_bound():
    """ARC-AGI-1 eval has 7 tasks (ARC-AGI-2 eval 1) whose output is larger than any grid they show:
    a bound from the task's own grids cut them; the bound is the answer turn of a 30x30 grid."""
    from transformers import AutoTokenizer

    from arc_submit.config import SamplingConfig
    from arc_submit.data.tasks import load_dataset
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.predict.candidates import answer_bound, answer_reserve

    smollm = PromptBuilder(AutoTokenizer.from_pretrained(resolve(EMBEDDED_ALIAS).base_dir), ENCODER, 8192)
    settings = SamplingConfig()
    bound = answer_bound(smollm, settings)
    larger_than_shown = 0
    for task in load_dataset("arc-agi-1-eval") + load_dataset("arc-agi-2-eval"):
        needed = max(smollm.answer_tokens(pair.output) for pair in task.test)
        assert needed <= bound, task.task_id
        larger_than_shown += needed > answer_reserve(task, smollm, settings)
    assert larger_than_shown == 8  # these only need the room that max_seq_len leaves after the prompt


def test_each_request_may_use_all_the_room_its_prompt_leaves():
    from arc_submit.config import SamplingConfig
    from arc_submit.data.augment import Augmentation
    from arc_submit.predict.candidates import PromptJob, requests_for

    small = builder(max_seq_len=300)
    jobs = [PromptJob(0, Augmentation(), [1] * 100, 0), PromptJob(0, Augmentation(), [1] * 250, 1)]
    requests = requests_for(jobs, small, SamplingConfig(), bound=1000)
    assert [r.max_new_tokens for r in requests] == [200, 50]
    assert requests[0].stop_token_ids == tuple(sorted(small.stop_token_ids))


def test_text_after_the_closing_fence_is_ignored():
    grid = [[1, 2], [3, 4]]
    text = ENCODER.encode(grid) + "\n\nThat is my answer.\n```grid\nnot this\n```"
    candidate = decode_candidate(Completion(text, 10, -1.0, "stop"), builder(), draw(np.random.default_rng(0), 3,
                                                                                        geometric=False, permute_colours=False))
    assert candidate.grid == grid


def test_unparsed_answers_are_counted_by_kind():
    from arc_submit.data.augment import Augmentation
    from arc_submit.predict.candidates import unparsed_counts

    parsed = [decode_candidate(Completion(text, 5, -1.0, reason), builder(), Augmentation())
              for text, reason in [(ENCODER.encode([[1]]), "stop"), ("prose", "stop"), ("```grid shape: 1x1\n1 1",
                                                                                     "length"), ("also prose", "stop")]]
    assert unparsed_counts([parsed[:2], parsed[2:]]) == {"max_new_tokens": 1, "not_fenced": 2}


def sixteen_token_tokenizer():
    """A tokenizer with NVARC's 16-token kind of vocabulary: digits, newline, the ChatML words and specials."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tests.tiny_model import CHAT_TEMPLATE

    words = [*"0123456789", "\n", "user", "assistant", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("user|assistant|."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<|endoftext|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def test_a_format_the_tokenizer_cannot_say_is_refused_in_one_line():
    from arc_submit.config import PromptConfig
    from arc_submit.errors import UserError
    from arc_submit.model.load import prompt_builder

    with pytest.raises(UserError) as refused:
        prompt_builder(sixteen_token_tokenizer(), PromptConfig())
    [line] = refused.value.problems
    assert "prompt format 'arc-submit'" in line and "' ' (its unknown token)" in line and "\n" not in line


def test_every_named_format_fits_a_byte_level_tokenizer_and_the_characters_are_named(tiny):
    from arc_submit.config import PromptConfig
    from arc_submit.data.prompts import FORMATS
    from arc_submit.model.load import prompt_builder
    from tests.tiny_model import build_styled_tokenizer

    code_block = "GridCodeBlockEncoder(MinimalGridEncoder())"  # what arc24's formats need
    for name in FORMATS:
        config = PromptConfig(format=name, **({"encoder": code_block} if name.startswith("arc24") else {}))
        assert prompt_builder(build_styled_tokenizer("qwen3"), config).unencodable() == []
    _, tokenizer = tiny  # characters only: arc24's instructions use some it lacks
    builder = PromptBuilder(tokenizer, create(code_block), 8192, FORMATS["arc24-v1"])
    assert ("-", "its unknown token") in builder.unencodable() and ("0", "its unknown token") not in builder.unencodable()
