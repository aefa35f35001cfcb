"""model/training.py, the LoRA training TTFT runs per task, on a tiny random Llama: the adapter changes and the base
does not, the loss falls on a trivial task, only answer tokens carry loss, and the merged weights give the adapter's
logits exactly. (The train command built on it is test_train.py's.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
import torch

from arc_submit.config import TTFTConfig
from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.prompts import PromptBuilder
from arc_submit.model.merge import iter_base_weights, merged_weights
from arc_submit.model.training import (
    IGNORE_INDEX,
    TaskTooLong,
    Trainer,
    attach_adapter,
    collate,
    detach_adapter,
    example_stream,
)
from tests.helpers.tasks import FLIP, make_task


def trainer_for(tokenizer, max_seq_len: int = 2048, **settings) -> Trainer:
    config = TTFTConfig(**{"lora_rank": 8, "lora_alpha": 16.0, **settings})
    builder = PromptBuilder(tokenizer, create(DEFAULT_ENCODER), max_seq_len)
    return Trainer(config, builder, tokenizer.pad_token_id, progress=False)


def snapshot(module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def test_training_changes_the_adapter_and_not_the_base(tiny):
    model, tokenizer = tiny
    base_before = snapshot(model)
    trainer = trainer_for(tokenizer, learning_rate=1e-2)
    peft_model = attach_adapter(model, trainer.config, seed=0)
    lora_before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" in n}
    assert lora_before and all(p.requires_grad == ("lora_" in n) for n, p in peft_model.named_parameters())
    trainer.train(peft_model, [FLIP], steps=3, seed=0)
    lora_after = {n: p.detach() for n, p in peft_model.named_parameters() if "lora_" in n}
    assert any(not torch.equal(lora_before[n], lora_after[n]) for n in lora_before)
    restored = detach_adapter(peft_model)
    after = snapshot(restored)
    assert after.keys() == base_before.keys()
    assert all(torch.equal(base_before[n], after[n]) for n in base_before)


def test_a_detached_model_takes_the_next_adapter_without_warning(tiny):
    """Nothing of one task's adapter stays on the model (peft 0.17 left its config: a warning at every task)."""
    import warnings

    model, tokenizer = tiny
    config = trainer_for(tokenizer).config
    base = detach_adapter(attach_adapter(model, config, seed=0))
    assert "peft_config" not in vars(base)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detach_adapter(attach_adapter(base, config, seed=1))


def test_loss_falls_on_a_trivial_task(tiny):
    model, tokenizer = tiny
    trainer = trainer_for(tokenizer, learning_rate=1e-2, lora_rank=16, lora_alpha=32.0, schedule="constant",
                          warmup_fraction=0.0, eval_every=10, eval_examples=2)
    peft_model = attach_adapter(model, trainer.config, seed=1)
    result = trainer.train(peft_model, [FLIP], steps=40, seed=1)
    assert np.mean(result.losses[-5:]) < 0.5 * np.mean(result.losses[:5])
    assert [step for step, _ in result.eval_losses] == [10, 20, 30, 40]
    assert result.eval_losses[-1][1] < result.eval_losses[0][1]
    detach_adapter(peft_model)


def test_training_is_seeded(tiny):
    model, tokenizer = tiny
    runs = []
    for _ in range(2):
        trainer = trainer_for(tokenizer, learning_rate=1e-3)
        peft_model = attach_adapter(model, trainer.config, seed=5)
        runs.append(trainer.train(peft_model, [FLIP], steps=3, seed=5).losses)
        model = detach_adapter(peft_model)
    assert runs[0] == runs[1]


def test_only_answer_tokens_carry_loss(tiny):
    _, tokenizer = tiny
    stream = example_stream([FLIP], trainer_for(tokenizer).builder, np.random.default_rng(0), {})
    examples = [next(stream), next(stream)]
    batch = collate(examples, pad_id=tokenizer.pad_token_id)
    for row, example in enumerate(examples):
        labels = batch["labels"][row]
        assert torch.all(labels[: len(example.prompt_ids)] == IGNORE_INDEX)
        answer = labels[len(example.prompt_ids): example.length]
        assert answer.tolist() == example.answer_ids
        assert torch.all(labels[example.length:] == IGNORE_INDEX)
        assert int(batch["attention_mask"][row].sum()) == example.length


def test_leave_one_out_keeps_the_target_out_of_the_demonstrations(tiny):
    _, tokenizer = tiny
    builder = trainer_for(tokenizer).builder
    stream = example_stream([make_task(n_train=4)], builder, np.random.default_rng(3),
                            {"geometric": False, "permute_colours": False})
    for _ in range(10):
        example = next(stream)
        prompt, answer = tokenizer.decode(example.prompt_ids), tokenizer.decode(example.answer_ids)
        target = answer.split("<|im_end|>")[0]
        assert example.n_train == 3 and prompt.count(target) == 0


def test_a_task_too_long_to_fit_raises(tiny):
    _, tokenizer = tiny
    stream = example_stream([make_task()], trainer_for(tokenizer, max_seq_len=64).builder, np.random.default_rng(0), {})
    with pytest.raises(TaskTooLong):
        next(stream)


def test_merged_weights_give_the_adapter_logits(tiny):
    model, tokenizer = tiny
    config = TTFTConfig(lora_rank=4, lora_alpha=8.0)
    peft_model = attach_adapter(model, config, seed=0)
    with torch.no_grad():  # make the adapter non-trivial (B starts at zero)
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    ids = torch.tensor([tokenizer("1 012\n2 345", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    weights = merged_weights(peft_model, torch.float32)
    base = detach_adapter(peft_model)
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
    fresh = type(base)(base.config)
    result = fresh.load_state_dict(weights, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        merged = fresh(input_ids=ids).logits
    assert torch.allclose(merged, expected, atol=1e-5)
    assert not torch.allclose(base_logits, expected, atol=1e-3)  # the adapter did change the logits
    assert all(torch.equal(a, b) for a, b in zip(dict(iter_base_weights(base, torch.float32)).values(), base.state_dict().values()))


def test_the_answer_loss_equals_transformers_loss_without_whole_prompt_logits(tiny):
    """Logits only where the next token is an answer token: the same loss as transformers' from labels."""
    from arc_submit.model.training import answer_loss

    model, tokenizer = tiny
    stream = example_stream([FLIP], trainer_for(tokenizer).builder, np.random.default_rng(0), {})
    batch = collate([next(stream), next(stream), next(stream)], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        expected = model(**batch).loss
        ours = answer_loss(model, batch)
    assert torch.allclose(ours, expected, atol=1e-6) and ours.item() > 0


def test_rank_stabilised_lora_scales_by_the_square_root_of_the_rank():
    from arc_submit.config import TTFTConfig
    from arc_submit.model.training import lora_config

    assert lora_config(TTFTConfig(lora_rank=256, lora_alpha=32.0, rslora=True)).use_rslora
    assert not lora_config(TTFTConfig()).use_rslora


@pytest.mark.parametrize("tied", [True, False])
def test_lora_on_tied_embeddings_is_refused_before_any_task(tied):
    from transformers import AutoConfig, AutoModelForCausalLM

    from arc_submit.config import TTFTConfig
    from arc_submit.errors import UserError
    from arc_submit.model.training import check_targets

    config = AutoConfig.for_model("qwen3", vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=8, tie_word_embeddings=tied)
    model = AutoModelForCausalLM.from_config(config)
    check_targets(model, TTFTConfig())  # the default targets never touch the embeddings
    targets = TTFTConfig(target_modules=["q_proj", "embed_tokens", "lm_head"])
    if tied:
        with pytest.raises(UserError, match="ttft.target_modules includes embed_tokens and lm_head, but the model ties"):
            check_targets(model, targets)
    else:
        check_targets(model, targets)
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:  # a given adapter is judged by its own targets
        (Path(folder) / "adapter_config.json").write_text(json.dumps({"target_modules": ["q_proj", "lm_head"]}))
        if tied:
            with pytest.raises(UserError, match="the adapter targets lm_head, but its base model ties"):
                check_targets(model, TTFTConfig(), folder)
        else:
            check_targets(model, TTFTConfig(), folder)


@given(st.lists(st.floats(0.0, 12.0), min_size=1, max_size=64))
def test_a_loss_that_does_not_rise_is_never_taken_for_a_worse_model(losses):
    from arc_submit.model.training import loss_rose

    assert loss_rose(sorted(losses, reverse=True)) == ""  # falling or flat: healthy
    assert loss_rose([losses[0]] + [min(losses[0] + 1.0, losses[0] * 2.0)] * 3) == ""  # within the rule's margins


def test_a_loss_that_ends_near_a_uniform_guess_is_a_worse_model():
    from arc_submit.model.training import loss_rose

    said = loss_rose([1.26] + [10.80] * 31)  # the held-out run: ttft.learning_rate=1e6, smoke preset
    assert "rose from 1.260 at its first step to 10.800 over its last 8" in said
    assert loss_rose([0.5]) == ""  # one step: nothing to compare
