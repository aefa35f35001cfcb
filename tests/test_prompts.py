"""Prompts (data/prompts.py): the model's chat template, answer masking, fitting max_seq_len, system prompts and the
formats a tokenizer can say. How the answers the model writes are read back is test_candidates.py's."""

from __future__ import annotations

import numpy as np
import pytest

from arc_submit.data.encoders import create
from arc_submit.data.prompts import PromptBuilder
from tests.helpers.prompts import ENCODER, TOKENIZER, builder
from tests.helpers.tasks import make_task


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


def test_answer_tokens_counts_the_answer_turn():
    count = builder().answer_tokens([[1, 2], [3, 4]])
    assert count == len(ENCODER.encode([[1, 2], [3, 4]])) + 2  # one token per character, then <|im_end|> and \n


def test_single_pair_task_still_trains():
    from arc_submit.model.training import leave_one_out

    task = make_task(n_train=1)
    example = leave_one_out(task, builder(), np.random.default_rng(0), {})
    assert example is not None and example.n_train == 1


def sixteen_token_tokenizer():
    """A tokenizer with NVARC's 16-token kind of vocabulary: digits, newline, the ChatML words and specials."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tests.helpers.tiny_model import CHAT_TEMPLATE

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
    from tests.helpers.tiny_model import build_styled_tokenizer

    code_block = "GridCodeBlockEncoder(MinimalGridEncoder())"  # what arc24's formats need
    for name in FORMATS:
        config = PromptConfig(format=name, **({"encoder": code_block} if name.startswith("arc24") else {}))
        assert prompt_builder(build_styled_tokenizer("qwen3"), config).unencodable() == []
    _, tokenizer = tiny  # characters only: arc24's instructions use some it lacks
    builder = PromptBuilder(tokenizer, create(code_block), 8192, FORMATS["arc24-v1"])
    assert ("-", "its unknown token") in builder.unencodable() and ("0", "its unknown token") not in builder.unencodable()
