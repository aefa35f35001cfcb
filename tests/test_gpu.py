"""The CUDA paths: vLLM's CUDA build, fp16/bf16 training with the right precision handling, unsloth.
Skipped cleanly without a GPU; run them on a GPU machine with `python -m pytest -m gpu`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_training_in_half_precision_stays_finite(tiny_model_dir, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arc_submit.config import TTFTConfig
    from arc_submit.data.encoders import DEFAULT_ENCODER, create
    from arc_submit.data.prompts import PromptBuilder
    from arc_submit.model.training import Trainer, attach_adapter
    from tests.test_ttft import FLIP

    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype)).cuda()
    model.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = TTFTConfig(lora_rank=8, lora_alpha=16.0, learning_rate=1e-3)
    trainer = Trainer(config, PromptBuilder(tokenizer, create(DEFAULT_ENCODER), 2048), tokenizer.pad_token_id,
                      device="cuda", autocast_dtype=getattr(torch, dtype), progress=False)
    peft_model = attach_adapter(model, config, seed=0)
    assert all(p.dtype == torch.float32 for n, p in peft_model.named_parameters() if p.requires_grad)
    result = trainer.train(peft_model, [FLIP], steps=5, seed=0)
    assert all(loss == loss and loss < 1e4 for loss in result.losses)


@pytest.mark.e2e
def test_smoke_pipeline_on_the_gpu(tmp_path):
    result = run_cli("--config", "smoke", "--dataset", "arc-agi-2-eval", "--smallest", "1", "--set",
                     'model.dtype="auto"', "--set",
                     "sampling.gpu_memory_utilization=0.3", "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["engine_starts"] == 1 and summary["modes"] == {"full": 1}
