"""The CUDA paths: vLLM's CUDA build, fp16/bf16 training with the right precision handling. The CUDA
tests skip cleanly without a GPU (run them on one with `make test STACK=gpu` or `python -m pytest -m gpu`);
each has a stand-in here that runs the same code on the CPU: fp16 training through the loss scaler, bf16
pushes checked at the half-precision tolerance, the engine's sleep and wake around training, and one
GPU per worker."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_cli

torch = pytest.importorskip("torch")
needs_cuda = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture
def on_the_cpu(monkeypatch):
    """A CPU stand-in runs on the CPU even where a GPU is present (the session takes CUDA when it sees it): what it
    stands in for is the GPU path's code, and it asserts the device it ran on."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def train_tiny(tiny_model_dir, dtype: str, device: str, steps: int = 5):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arc_submit.config import TTFTConfig
    from arc_submit.data.encoders import DEFAULT_ENCODER, create
    from arc_submit.data.prompts import PromptBuilder
    from arc_submit.model.training import Trainer, attach_adapter
    from tests.helpers.tasks import FLIP

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype)).to(device)
    model.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = TTFTConfig(lora_rank=8, lora_alpha=16.0, learning_rate=1e-3)
    trainer = Trainer(config, PromptBuilder(tokenizer, create(DEFAULT_ENCODER), 2048), tokenizer.pad_token_id,
                      device=device, autocast_dtype=getattr(torch, dtype), progress=False)
    peft_model = attach_adapter(model, config, seed=0)
    assert all(p.dtype == torch.float32 for n, p in peft_model.named_parameters() if p.requires_grad)
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_B" in n}
    state = trainer.begin(peft_model, [FLIP], steps, seed=0)
    result = trainer.train(peft_model, [FLIP], steps=steps, seed=0)
    changed = any(not torch.equal(before[n], p) for n, p in peft_model.named_parameters() if n in before)
    return state, result, changed


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=needs_cuda), "cpu"])
def test_training_in_half_precision_stays_finite(tiny_model_dir, dtype, device):
    """fp16 goes through the gradient scaler (on the CPU too: the same code path as on a T4), bf16 does not."""
    if device == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    state, result, changed = train_tiny(tiny_model_dir, dtype, device)
    assert (state.scaler is not None) == (dtype == "float16")
    assert all(loss == loss and loss < 1e4 for loss in result.losses) and changed


def test_bf16_pushes_pass_the_half_precision_check_on_the_cpu(tiny_model_dir, tmp_path, on_the_cpu):
    """Weights merged and pushed in bf16, then the probe compared at PUSH_TOLERANCE['bfloat16'], as on a GPU."""
    from tests.helpers.runs import TASKS, run

    pipeline = run(tiny_model_dir, tmp_path / "run", 'model.dtype="bfloat16"', "ttft.learning_rate=0.05")
    assert pipeline.summary["modes"] == {"full": len(TASKS)}
    assert (pipeline.session.dtype, pipeline.session.device) == ("bfloat16", "cpu")


def test_the_engine_sleeps_while_training_and_wakes_before_the_push(tiny_model_dir, tmp_path, monkeypatch, on_the_cpu):
    """The order a CUDA engine with sleep mode needs, through the real task runner and a sampler that
    records what it is asked (the transformers sampler, told that it sleeps)."""
    from arc_submit.model import training
    from arc_submit.predict.transformers_sampler import TransformersSampler
    from tests.helpers.runs import TASKS, run

    calls: list[str] = []
    monkeypatch.setattr(TransformersSampler, "sleep", lambda self: calls.append("sleep"), raising=False)
    monkeypatch.setattr(TransformersSampler, "wake", lambda self: calls.append("wake"), raising=False)
    for name in ("load_weights", "generate", "prompt_logprobs"):
        real = getattr(TransformersSampler, name)
        monkeypatch.setattr(TransformersSampler, name,
                            lambda self, *a, _real=real, _name=name, **k: (calls.append(_name), _real(self, *a, **k))[1])
    real_advance = training.Trainer.advance
    monkeypatch.setattr(training.Trainer, "advance", lambda self, state: (calls.append("train"), real_advance(self, state))[1])
    pipeline = run(tiny_model_dir, tmp_path / "run", tasks=TASKS[:1])
    assert pipeline.session.device == "cpu"
    first_task = calls[calls.index("sleep"):]
    assert first_task[:3] == ["sleep", "train", "train"]  # asleep before the first step
    wake = first_task.index("wake")
    assert set(first_task[1:wake]) == {"train"}  # nothing asks the engine while it sleeps
    assert first_task[wake + 1] == "load_weights" and "generate" in first_task[wake:]


def test_a_failed_ttft_pushes_again_what_a_sleep_that_discards_weights_lost(tiny_model_dir, tmp_path, monkeypatch,
                                                                              on_the_cpu):
    """vLLM's sleep level 2 discards the weights: the stand-in (the transformers sampler) zeroes its model when it
    sleeps, as an engine's memory holds nothing servable after waking. A task whose TTFT fails (out of memory)
    must push the base weights again before sampling, not sample from what the sleep left."""
    from arc_submit.predict.transformers_sampler import TransformersSampler
    from tests.helpers.runs import TASKS, read, run

    state = {"discarded": False, "sampled_from_discarded": 0}

    def sleep(self):
        with torch.no_grad():
            for parameter in self.model.parameters():
                parameter.zero_()
        state["discarded"] = True

    real_load, real_generate = TransformersSampler.load_weights, TransformersSampler.generate

    def load_weights(self, weights):
        state["discarded"] = False
        return real_load(self, weights)

    def generate(self, *args, **kwargs):
        state["sampled_from_discarded"] += state["discarded"]
        return real_generate(self, *args, **kwargs)

    monkeypatch.setattr(TransformersSampler, "discards_weights_asleep", True, raising=False)
    monkeypatch.setattr(TransformersSampler, "sleep", sleep)
    monkeypatch.setattr(TransformersSampler, "load_weights", load_weights)
    monkeypatch.setattr(TransformersSampler, "generate", generate)
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", f"ttft:{TASKS[0].task_id}:oom")
    pipeline = run(tiny_model_dir, tmp_path / "run", tasks=TASKS[:1])
    record = read(tmp_path / "run" / "tasks" / f"{TASKS[0].task_id}.json")
    assert record["mode"] == "no_ttft" and record["failed_stages"] == ["ttft"] and pipeline.session.device == "cpu"
    assert state["sampled_from_discarded"] == 0 and "load_s" in record["timings"]  # pushed again, and checked


def test_a_sleep_that_fails_breaks_the_engine_as_any_engine_call():
    """vLLM's sleep unmaps memory; one that raised leaves an engine in no known state: never used again (its
    worker is replaced), as after any other engine call that raised. The engine here is a stand-in object."""
    from arc_submit.errors import EngineBroken
    from arc_submit.predict.vllm_sampler import VLLMSampler

    class Engine:
        levels: list[int] = []

        def sleep(self, level):
            self.levels.append(level)
            raise RuntimeError("cuMemUnmap failed")

    sampler = object.__new__(VLLMSampler)  # no vLLM here: the sampler's own logic around the engine
    sampler.llm, sampler.sleeps, sampler.sleep_level = Engine(), True, 2
    with pytest.raises(EngineBroken, match="sleep failed: RuntimeError: cuMemUnmap failed"):
        sampler.sleep()
    assert Engine.levels == [2] and not sampler.asleep
    with pytest.raises(EngineBroken, match="not used again after sleep failed"):
        sampler.load_weights([])


def test_each_worker_is_pinned_to_its_own_gpu(monkeypatch):
    from arc_submit.run.executors import worker_environment

    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)  # set for the tests' own processes

    envs = [worker_environment(index, 4, 0, ["0", "1", "2", "3"]) for index in range(4)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["0", "1", "2", "3"]
    assert "VLLM_CPU_OMP_THREADS_BIND" not in envs[0]
    import os

    cores = os.cpu_count() or 1  # a GPU worker's own threads (tokenizing, merging) get a share of the cores
    assert [env["OMP_NUM_THREADS"] for env in envs] == [str(max(1, cores // 4))] * 4
    assert worker_environment(0, 4, 3, ["0"])["OMP_NUM_THREADS"] == "3"


def test_workers_that_start_together_get_their_own_ports_and_compile_caches(monkeypatch, tmp_path):
    from arc_submit.run.executors import PORTS_PER_WORKER, worker_environment

    monkeypatch.delenv("VLLM_PORT", raising=False)
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm"))
    envs = [worker_environment(index, 2, 0, []) for index in range(2)]
    ports = [int(env["VLLM_PORT"]) for env in envs]
    assert ports[1] - ports[0] == PORTS_PER_WORKER  # vLLM counts up from its VLLM_PORT: the ranges never meet
    assert [env["VLLM_CACHE_ROOT"] for env in envs] == [str(tmp_path / "vllm" / "worker-0"),
                                                        str(tmp_path / "vllm" / "worker-1")]
    assert worker_environment(1, 2, 0, [])["VLLM_PORT"] == str(ports[1])  # a restarted worker: its slot's again
    monkeypatch.setenv("VLLM_PORT", "40000")  # a range the user chose is kept, each worker its own part
    assert [worker_environment(index, 2, 0, [])["VLLM_PORT"] for index in range(2)] == ["40000", str(40000 + PORTS_PER_WORKER)]


def test_more_workers_than_gpus_are_refused_in_one_line(monkeypatch, tmp_path):
    from arc_submit.errors import UserError
    from arc_submit.run.executors import LocalExecutor

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(UserError, match=r"--workers 3: this machine has 2 GPU\(s\) \(0, 1\); a worker takes a whole GPU"):
        LocalExecutor(tmp_path, 3, 0, 30.0)
    LocalExecutor(tmp_path, 2, 0, 30.0).close()


@pytest.mark.e2e
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_smoke_pipeline_on_the_gpu(tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("needs vLLM's CUDA build (the smoke preset samples with vLLM): make install STACK=gpu")
    result = run_cli("--config", "smoke", "--dataset", "arc-agi-2-eval", "--smallest", "1", "--set",
                     'model.dtype="auto"', "--set",
                     "sampling.gpu_memory_utilization=0.3", "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["engine_starts"] == 1 and summary["modes"] == {"full": 1}


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU, `make gpu-check` itself is the check")
def test_gpu_check_reports_every_part_and_skips_the_gpu_ones_on_a_cpu(tmp_path):
    """`make gpu-check` on a machine without CUDA: a JSON report that lists each part, every GPU part skipped
    with its reason (cuda_tests, which starts pytest again, is left to `make gpu-check`)."""
    import os
    import re
    import subprocess
    import sys

    from tests.helpers.cli import ROOT

    parts = ["training_bfloat16", "push", "training_float16", "vllm_engine"]
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "gpu_check.py"), "--out", str(tmp_path / "report.json"),
                           "--parts", *parts], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["device"] == "no CUDA GPU" and list(report["parts"]) == parts
    assert all(part["status"] == "skipped" and part["why"] for part in report["parts"].values())
    assert "0 ran, 4 skipped, 0 failed" in done.stdout
    target = re.search(r"^gpu-check:\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert "timeout 600" in target and "tests/gpu_check.py" in target  # at most 10 minutes on one GPU
