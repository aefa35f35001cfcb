"""Prompts: the model's chat template, answer masking, fitting max_seq_len, and decode+invert of answers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_submit.data.augment import draw
from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.prompts import PromptBuilder
from arc_submit.predict.backends import Completion
from arc_submit.predict.candidates import decode_candidate
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
    candidate = decode_candidate(Completion(text, 10, -1.5, "stop"), ENCODER, augmentation)
    assert candidate.grid == grid and candidate.text is None and candidate.logprob == -1.5


def test_unparsable_or_truncated_text_is_unanswered_with_its_text_kept():
    augmentation = draw(np.random.default_rng(0), 2)
    prose = decode_candidate(Completion("The answer is 968.", 5, -3.0, "stop"), ENCODER, augmentation)
    assert prose.grid == [] and prose.text == "The answer is 968." and "fenced" in prose.reason
    cut = decode_candidate(Completion(ENCODER.encode([[1]]), 5, -3.0, "length"), ENCODER, augmentation)
    assert cut.grid == [] and "max_new_tokens" in cut.reason


def test_answer_tokens_counts_the_answer_turn():
    count = builder().answer_tokens([[1, 2], [3, 4]])
    assert count == len(ENCODER.encode([[1, 2], [3, 4]])) + 2  # one token per character, then <|im_end|> and \n


def test_single_pair_task_still_trains():
    from arc_submit.model.training import leave_one_out

    task = make_task(n_train=1)
    example = leave_one_out(task, builder(), np.random.default_rng(0), {})
    assert example is not None and example.n_train == 1
