"""Any chat template: tiny models of real architectures (Qwen3, Llama, Qwen2), each with a tokenizer of
one template style (Qwen3's with its empty think block, Llama 3's with <|eot_id|>, and none at all),
overfit one example with the TTFT trainer, then write exactly that grid and stop by themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arc_submit.config import SamplingConfig, TTFTConfig
from arc_submit.data.augment import Augmentation
from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.prompts import PromptBuilder, load_format
from arc_submit.data.tasks import Pair, Task
from arc_submit.model.merge import iter_merged_weights
from arc_submit.model.training import Trainer, attach_adapter, example_stream
from arc_submit.predict.candidates import PromptJob, answer_bound, decode_candidate, requests_for
from arc_submit.predict.transformers_sampler import TransformersSampler
from tests.helpers.tiny_model import build_styled_model

TASK = Task("one", [Pair([[1, 2], [3, 4]], [[4, 3], [2, 1]])], [Pair([[1, 2], [3, 4]])])
FIXED = {"geometric": False, "permute_colours": False, "shuffle_train": False}


@pytest.fixture(scope="module", params=["qwen3", "llama3", "none"])
def styled(request, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_styled_model(tmp_path_factory.mktemp(request.param), request.param)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.requires_grad_(False)
    return request.param, folder, model, AutoTokenizer.from_pretrained(folder)


def builder_for(tokenizer) -> PromptBuilder:
    return PromptBuilder(tokenizer, create(DEFAULT_ENCODER), 2048, load_format("arc-submit"))


def test_the_answer_turn_ends_the_way_the_template_ends_a_turn(styled):
    style, _, _, tokenizer = styled
    builder = builder_for(tokenizer)
    rendered = builder.render_text(TASK.train, TASK.test[0].input, TASK.train[0].output)
    answer_ids = builder.answer_ids(TASK.train[0].output)
    if style == "qwen3":  # the think block the template writes is part of the prompt, never of the answer
        assert rendered.prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert rendered.answer.startswith("```grid") and "think" not in rendered.answer
        assert tokenizer.convert_ids_to_tokens(answer_ids[-2]) == "<|im_end|>"
    if style == "llama3":
        assert rendered.prompt.startswith("<|begin_of_text|>") and rendered.answer.endswith("<|eot_id|>")
        assert builder.stop_token_ids == {tokenizer.convert_tokens_to_ids("<|eot_id|>"), tokenizer.eos_token_id}
    if style == "none":  # the plain fallback ends no turn: an explicit end-of-sequence token is added
        assert builder.adds_eos and answer_ids[-1] == tokenizer.eos_token_id
    assert not (style != "none" and builder.adds_eos)


def test_a_tiny_model_overfits_one_example_then_writes_that_grid_and_stops(styled):
    style, folder, model, tokenizer = styled
    builder = builder_for(tokenizer)
    config = TTFTConfig(lora_rank=16, lora_alpha=32.0, learning_rate=1e-2, schedule="constant", warmup_fraction=0.0)
    config.augment.geometric = config.augment.permute_colours = config.augment.shuffle_train = False
    example = next(example_stream([TASK], builder, np.random.default_rng(0), FIXED))
    assert example.answer_ids == builder.answer_ids(TASK.train[0].output)
    peft_model = attach_adapter(model, config, seed=0)
    result = Trainer(config, builder, tokenizer.pad_token_id, progress=False).train(peft_model, [TASK], 60, seed=0)
    assert result.losses[-1] < 0.05, (style, result.losses[::10])
    sampler = TransformersSampler(folder, "float32", 2048, SamplingConfig(), 0, "cpu")
    sampler.load_weights(iter_merged_weights(peft_model, torch.float32))
    prompt = builder.render(TASK.train, TASK.test[0].input).prompt_ids
    assert prompt == example.prompt_ids
    settings = SamplingConfig(backend="transformers")
    [request] = requests_for([PromptJob(0, Augmentation(), prompt, 0)], builder, settings, answer_bound(builder, settings))
    [[completion]] = sampler.generate([request])
    assert completion.finish_reason == "stop", (style, completion.text)
    candidate = decode_candidate(completion, builder, Augmentation())
    assert candidate.grid == TASK.train[0].output, (style, completion.text)
