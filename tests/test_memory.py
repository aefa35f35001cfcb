"""run/memory.py: will a run fit in GPU memory? The estimate counts the parameters and orders what costs memory
(vLLM's reserve, the scoring's log-softmax, CUDA graphs outside the engine's share, a KV cache sized in prompts);
a run on CUDA refuses a model that cannot fit before anything loads (the session's check); `plan --memory` prints
the table; and what a process holds stays flat over many tasks."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.runs import TASKS, run


def test_the_memory_estimate_counts_parameters_and_orders_what_costs_memory(tiny_model_dir):
    from arc_submit.config import load_config
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.run.memory import REFERENCE, Architecture, estimate

    for folder in (tiny_model_dir, resolve(EMBEDDED_ALIAS).base_dir):  # untied and tied embeddings
        from transformers import AutoModelForCausalLM

        real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(folder).parameters())
        assert Architecture.from_config(folder).parameters == pytest.approx(real, rel=0.01)
    base = load_config("kaggle-l4x4", ["ttft.gradient_checkpointing=false"])
    small, large = (estimate(REFERENCE[size], base, 22.5) for size in ("0.5B", "8B"))
    assert small["peak_gib"] < large["peak_gib"] and small["fits"] and not large["fits"]
    checkpointed = estimate(REFERENCE["4B"], load_config("kaggle-l4x4"), 22.5)
    assert checkpointed["activations_gib"] < estimate(REFERENCE["4B"], base, 22.5)["activations_gib"] / 5
    awake = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ["sampling.sleep_while_training=false"]), 22.5)
    assert awake["peak_gib"] == pytest.approx(checkpointed["training_gib"] + checkpointed["engine_gib"]
                                              + checkpointed["graphs_gib"])


def test_the_estimate_counts_vllms_reserve_and_the_scoring_log_softmax():
    """At an engine share of 0.4 (the old preset) a 4B model's weights and vLLM's reserve leave no KV cache
    for one prompt of 8,192 tokens, and nvarc's scoring at vLLM's default step of 8,192 tokens takes
    9.3 GiB beside the engine; the preset as it is fits, with the scoring bounded."""
    from arc_submit.config import load_config
    from arc_submit.run.memory import REFERENCE, estimate

    old = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", [
        "sampling.gpu_memory_utilization=0.4", "sampling.max_batched_tokens=0", 'voting.rule="nvarc"']), 22.5)
    assert old["full_prompts_in_kv_cache"] < 1 and old["scoring_gib"] == pytest.approx(9.27, abs=0.01)
    assert not old["fits"]
    now = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['voting.rule="nvarc"']), 22.5)
    assert now["fits"] and now["full_prompts_in_kv_cache"] >= 2 and now["scoring_gib"] < 1.2
    assert estimate(REFERENCE["4B"], load_config("kaggle-l4x4"), 22.5)["scoring_gib"] == 0  # vote scores nothing
    eager = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ["sampling.enforce_eager=true"]), 22.5)
    assert eager["engine_reserve_gib"] == pytest.approx(now["engine_reserve_gib"]) and eager["graphs_gib"] == 0


def test_cuda_graphs_come_outside_the_engines_share_and_the_margin_is_said():
    """vLLM 0.11 captures CUDA graphs after it sized its KV cache from gpu_memory_utilization: the graphs add to
    the sampling peak, they do not come out of the KV cache. Level 2 sleep keeps no host copy of the weights;
    LoRA serving sleeps at level 1, which keeps one."""
    from arc_submit.config import load_config
    from arc_submit.run.memory import GRAPHS_GIB, REFERENCE, estimate

    config = load_config("kaggle-l4x4", ['voting.rule="nvarc"'])
    row = estimate(REFERENCE["4B"], config, 22.5)
    eager = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['voting.rule="nvarc"', "sampling.enforce_eager=true"]),
                     22.5)
    assert row["kv_cache_gib"] == pytest.approx(eager["kv_cache_gib"])  # the share's KV cache: graphs or not
    assert row["sampling_gib"] == pytest.approx(eager["sampling_gib"] + GRAPHS_GIB)
    assert row["margin_gib"] == pytest.approx(22.5 - row["peak_gib"]) and row["host_gib"] == 0
    lora = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['sampling.adapter="lora"']), 22.5)
    assert lora["host_gib"] == pytest.approx(lora["weights_gib"])


def test_a_kv_cache_in_prompts_sizes_the_engine_whatever_its_share(tiny_model_dir):
    """sampling.kv_cache_prompts: the KV cache holds that many prompts of max_seq_len, the engine is its weights,
    reserve and that cache (the share no longer counts), and the bytes given to vLLM agree with the estimate."""
    from arc_submit.config import load_config
    from arc_submit.errors import UserError
    from arc_submit.model.load import kv_bytes_per_token
    from arc_submit.run.memory import GIB, REFERENCE, Architecture, estimate

    share = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['voting.rule="nvarc"']), 22.5)
    for shares in ("0.5", "0.9"):
        config = load_config("kaggle-l4x4", ['voting.rule="nvarc"', "sampling.kv_cache_prompts=2",
                                             f"sampling.gpu_memory_utilization={shares}"])
        row = estimate(REFERENCE["4B"], config, 22.5)
        assert row["full_prompts_in_kv_cache"] == pytest.approx(2)
        assert row["kv_cache_gib"] == pytest.approx(2 * 8192 * 2 * 36 * 8 * 128 * 2 / GIB)  # 147,456 bytes a token
        assert row["engine_gib"] == pytest.approx(row["weights_gib"] + row["engine_reserve_gib"] + row["kv_cache_gib"])
        assert row["fits"] and row["margin_gib"] > share["margin_gib"] + 1  # 2 prompts: less than the share's 3.15
    arch = Architecture.from_config(tiny_model_dir)
    for dtype, width in (("float32", 4), ("bfloat16", 2)):
        assert kv_bytes_per_token(tiny_model_dir, dtype) == 2 * arch.layers * arch.kv_heads * arch.head_dim * width
    with pytest.raises(UserError, match="sampling.kv_cache_prompts"):
        load_config("kaggle-l4x4", ["sampling.kv_cache_prompts=-1"])
    from arc_submit.config import SamplingConfig
    from arc_submit.predict.vllm_sampler import kv_cache_bytes

    given = kv_cache_bytes(tiny_model_dir, "bfloat16", 2048, SamplingConfig(kv_cache_prompts=3))  # vLLM 0.11 and 0.32
    assert given == 3 * 2048 * kv_bytes_per_token(tiny_model_dir, "bfloat16")


def test_a_model_that_cannot_fit_the_gpu_is_refused_before_anything_loads(tmp_path, monkeypatch):
    """The check a run on CUDA makes first, on a 4B model's config.json and a T4's 15 GiB."""
    from types import SimpleNamespace

    import torch

    from arc_submit.config import load_config
    from arc_submit.errors import UserError
    from arc_submit.model.resolve import ResolvedModel
    from arc_submit.run.session import check_gpu_memory

    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 2560, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
        "num_hidden_layers": 36, "intermediate_size": 9728, "vocab_size": 151936, "tie_word_embeddings": True}))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(total_memory=15 * 2**30, name="Tesla T4"))
    with pytest.raises(UserError) as refused:
        check_gpu_memory(load_config("kaggle-t4x2"), ResolvedModel(tmp_path, None))
    message = str(refused.value)
    assert "\n" not in message and "does not fit Tesla T4 (15.0 GiB)" in message and "plan --memory" in message
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(total_memory=int(22.5 * 2**30), name="NVIDIA L4"))
    check_gpu_memory(load_config("kaggle-l4x4"), ResolvedModel(tmp_path, None))  # fits: no error


def test_plan_memory_prints_a_table_for_l4_and_t4():
    result = run_cli("plan", "--memory", "--config", "kaggle-l4x4", "--size", "0.5B", "--size", "4B")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])["memory"]
    assert [(row["model"], row["gpu"]) for row in rows] == [("Qwen2.5-0.5B", "L4"), ("Qwen2.5-0.5B", "T4"),
                                                            ("Qwen3-4B", "L4"), ("Qwen3-4B", "T4")]


@pytest.mark.slow
def test_memory_stays_flat_over_many_tasks_in_one_process(tiny_model_dir, tmp_path, caplog):
    """The same task under 14 names, one after another in one session: what the process holds after the last is
    within 24 MiB of what it held after the third. The margin covers what the run keeps on purpose (each
    task's record, a few KB) and the allocator's pools; a leak of a model-sized thing per task (an adapter left
    attached, a copy of the weights, a growing cache) would pass it within a few tasks. Freed memory glibc
    would keep (the resident figure swung 0.4-0.8 GiB between tasks on the smoke preset) goes back to the
    system after every task, and the run log says the figure after each."""
    import logging
    import re
    from dataclasses import replace

    caplog.set_level(logging.INFO, logger="arc_submit")
    tasks = [replace(TASKS[0], task_id=f"{TASKS[0].task_id[:6]}{index:02d}") for index in range(14)]
    run(tiny_model_dir, tmp_path / "run", tasks=tasks)
    after = [int(re.search(r"resident_mib (\d+)", record.getMessage()).group(1)) for record in caplog.records
             if "memory after it" in record.getMessage()]
    assert len(after) == len(tasks)
    assert after[-1] - after[2] <= 24, after
