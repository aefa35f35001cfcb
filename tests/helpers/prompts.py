"""A prompt builder on the tiny character tokenizer (one token per character, ChatML) and the default encoder."""

from __future__ import annotations

from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.prompts import PromptBuilder
from tests.helpers.tiny_model import build_tokenizer

TOKENIZER = build_tokenizer()
ENCODER = create(DEFAULT_ENCODER)


def builder(max_seq_len: int = 4096) -> PromptBuilder:
    return PromptBuilder(TOKENIZER, ENCODER, max_seq_len)
