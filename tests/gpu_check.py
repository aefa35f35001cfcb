"""`make gpu-check`: everything GPU-only arc-submit has, in one command of at most 10 minutes on one GPU, with one
JSON report. For the day a GPU is lent: run it first, and put its report in the issue's note.

    make gpu-check             # PYTHONPATH=. python tests/gpu_check.py --out build/gpu-check.json

Parts, each reported as ran / skipped (and why) / failed (and the error), with its seconds and numbers:
- cuda_tests: the tests marked gpu (`pytest -m gpu`), by outcome;
- training_bfloat16, training_float16: LoRA training steps of a random-init model of Qwen3-4B's shape at the
  kaggle-l4x4 preset's max_seq_len, with memory capped to an L4's 22.5 GiB: the loss finite, and the peak
  memory against `plan --memory`'s training estimate;
- push: the merged weights streamed into a second copy of the model, tensor by tensor: its log-probabilities
  against the trained model's, and the memory the stream took above resting;
- vllm_engine: with vLLM installed, its engine on a tiny model, its KV cache given in bytes: start, DFS leaves
  against transformers' (one prompt prefilled in chunks), a push under CUDA graphs checked on a probe, sleep
  and wake (weights discarded at level 2, then pushed again and checked), prompt log-probabilities of a
  prompt longer than max_batched_tokens (chunked prefill) against transformers'.
No network, with or without vLLM; on a machine without CUDA every part but cuda_tests says it was skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
L4_GIB = 22.5
DEVICE = "cuda"
TRAINING_STEPS = 2


def skipped(why: str) -> dict:
    return {"status": "skipped", "why": why}


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ----------------------------------------------------------------------------- parts

def cuda_tests() -> dict:
    if importlib.util.find_spec("pytest") is None:
        return skipped("pytest is not installed")
    report = Path(tempfile.mkdtemp()) / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                           f"--junitxml={report}", str(ROOT / "tests" / "test_gpu.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=420)
    import xml.etree.ElementTree as ElementTree

    suite = ElementTree.parse(report).getroot().find("testsuite") if report.exists() else None
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")} if suite is not None \
        else {}
    return {"status": "ran" if done.returncode in (0, 1) else "failed", "exit_code": done.returncode, **counts,
            "last_lines": done.stdout.strip().splitlines()[-5:]}


def qwen3_4b_shape(layers: int | None = None):
    """A transformers config of Qwen3-4B's published shape (random weights: no download)."""
    from transformers import AutoConfig

    from arc_submit.run.memory import REFERENCE

    arch = REFERENCE["4B"]
    return AutoConfig.for_model("qwen3", hidden_size=arch.hidden, intermediate_size=arch.intermediate,
                                num_hidden_layers=layers or arch.layers, num_attention_heads=arch.heads,
                                num_key_value_heads=arch.kv_heads, head_dim=arch.head_dim, vocab_size=arch.vocab,
                                tie_word_embeddings=True, max_position_embeddings=40960)


def random_model(dtype):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(qwen3_4b_shape(), dtype=dtype)
    model.requires_grad_(False)
    return model


def training(dtype_name: str) -> dict:
    """LoRA steps through TTFT's own Trainer (arc_submit.model.training: the adapter, answer-only loss, fp16
    through the loss scaler, clipping, trainable weights in float32) on a 4B model, each step one example of
    max_seq_len tokens whose last ANSWER_TOKENS are the answer, memory capped to an L4's."""
    if not cuda():
        return skipped("no CUDA GPU")
    import itertools
    from types import SimpleNamespace

    import torch

    from arc_submit.config import load_config
    from arc_submit.data.prompts import Example
    from arc_submit.model.training import Trainer, attach_adapter
    from arc_submit.run.memory import ANSWER_TOKENS, REFERENCE, estimate

    if dtype_name == "bfloat16" and not torch.cuda.is_bf16_supported():
        return skipped("this GPU has no bf16")
    config = load_config("kaggle-l4x4", [f'model.dtype="{dtype_name}"'])
    total = torch.cuda.get_device_properties(0).total_memory / GIB
    torch.cuda.set_per_process_memory_fraction(min(1.0, L4_GIB / total))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    dtype = getattr(torch, dtype_name)
    model = random_model(dtype)
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    peft_model = attach_adapter(model, config.ttft, seed=0)
    plain_format = SimpleNamespace(format=SimpleNamespace(multi_turn=False))  # the examples come ready-made
    trainer = Trainer(config.ttft, plain_format, pad_id=0, device=DEVICE, autocast_dtype=dtype, progress=False)
    state = trainer.begin(peft_model, [], TRAINING_STEPS, seed=0)
    length = config.prompt.max_seq_len
    ids = torch.randint(0, 1000, (length,)).tolist()
    state.stream = itertools.repeat(Example(ids[:-ANSWER_TOKENS], ids[-ANSWER_TOKENS:], n_train=1))
    start = time.perf_counter()
    peft_model.train()
    losses = [trainer.advance(state) for _ in range(TRAINING_STEPS)]  # a non-finite loss raises here
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / GIB
    estimated = estimate(REFERENCE["4B"], config, L4_GIB)["training_gib"]
    result = {"status": "ran", "losses": losses, "seconds_per_step": seconds / TRAINING_STEPS, "max_seq_len": length,
              "peak_allocated_gib": round(peak, 2), "estimated_training_gib": round(estimated, 2),
              "peak_over_estimate": round(peak / estimated, 3)}
    if dtype_name == "bfloat16":
        peft_model.eval()
        PUSH_SOURCE["model"] = peft_model  # the push part streams this trained model's weights
    else:
        del peft_model, model, state
        torch.cuda.empty_cache()
    return result


PUSH_SOURCE: dict = {}


def push() -> dict:
    """The trained model's merged weights streamed into a second copy, as into an engine: equal answers."""
    if not cuda():
        return skipped("no CUDA GPU")
    if "model" not in PUSH_SOURCE:
        return skipped("the bfloat16 training part did not run")
    import torch

    from arc_submit.model.merge import iter_merged_weights
    from arc_submit.predict.sampler import token_logprobs

    trained = PUSH_SOURCE.pop("model")
    for parameter in trained.parameters():
        parameter.grad = None
    torch.cuda.empty_cache()
    second = random_model(torch.bfloat16)
    resting = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    targets = dict(second.state_dict(keep_vars=True))
    with torch.no_grad():
        for name, tensor in iter_merged_weights(trained, torch.bfloat16):
            targets[name].copy_(tensor)
    seconds = time.perf_counter() - start
    above = (torch.cuda.max_memory_allocated() - resting) / GIB
    probe = list(range(100, 196))
    difference = max(abs(a - b) for a, b in zip(token_logprobs(trained, probe), token_logprobs(second, probe)))
    return {"status": "ran" if difference < 0.1 else "failed", "seconds": round(seconds, 2),
            "stream_above_resting_gib": round(above, 3), "largest_logprob_difference": difference}


def vllm_engine() -> dict:
    if importlib.util.find_spec("vllm") is None:
        return skipped("vLLM is not installed (the device machine has none; `make install STACK=gpu` brings it)")
    if not cuda():
        return skipped("no CUDA GPU")
    import torch
    from transformers import AutoModelForCausalLM

    from arc_submit.config import SamplingConfig
    from arc_submit.model.merge import iter_base_weights
    from arc_submit.predict.sampler import token_logprobs
    from arc_submit.predict.vllm_sampler import VLLMSampler
    from tests.helpers.tiny_model import build_winner_model

    folder = build_winner_model(Path(tempfile.mkdtemp()) / "tiny", "architects")  # head_dim 32: any attention
    config = SamplingConfig(kv_cache_prompts=4, max_batched_tokens=256, enforce_eager=False,
                            sleep_while_training=True)
    start = time.perf_counter()
    sampler = VLLMSampler(folder, "float32", 2048, config, seed=0, device="cuda")
    started = time.perf_counter() - start
    dfs = dfs_leaves_agree(sampler, folder)  # on the weights the engine started with, before any push
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to("cuda")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))  # other weights than the engine started with
    probe = [int(i) % 60 + 3 for i in range(600)]  # longer than max_batched_tokens: prefilled in chunks
    expected = token_logprobs(model, probe)

    def largest_difference():
        return max(abs(a - b) for a, b in zip(sampler.prompt_logprobs(probe), expected))

    report = sampler.load_weights(iter_base_weights(model, torch.float32))
    after_push = largest_difference()
    sampler.sleep()
    sampler.wake()
    after_wake_unpushed = largest_difference()  # level 2 discarded the weights: not the model's now
    sampler.load_weights(iter_base_weights(model, torch.float32))
    after_wake_pushed = largest_difference()
    ok = not report.missing and after_push < 2e-3 and after_wake_pushed < 2e-3 and dfs["same_leaves"]
    return {"status": "ran" if ok else "failed", "start_seconds": round(started, 1), "missing": report.missing,
            "sleep_level": sampler.sleep_level, "probe_tokens": len(probe), "max_batched_tokens": 256,
            "chunked_logprob_difference_after_push": after_push, "difference_after_wake_before_push": after_wake_unpushed,
            "difference_after_wake_and_push": after_wake_pushed, "dfs": dfs}


def dfs_leaves_agree(sampler, folder: Path, device: str = DEVICE) -> dict:
    """DFS under CUDA graphs, a prompt prefilled in chunks, and the floor stop: vLLM's leaves against those of
    transformers on the same weights, as tests/engines/dfs_engines.py compares them on CPU. Half the tokens end a
    leaf, so the tree is wide."""
    from arc_submit.config import SamplingConfig
    from arc_submit.predict.dfs import search
    from arc_submit.predict.sampler import create_sampler

    vocabulary = sampler.llm.llm_engine.model_config.get_vocab_size()
    prompts = [[int(i) % 60 + 3 for i in range(600)], [5, 6, 7, 8]]  # the first longer than a step of 256
    ends = set(range(0, vocabulary, 2))
    found = {}
    for name, engine in (("vllm", sampler), ("transformers", create_sampler(
            SamplingConfig(backend="transformers"), folder, "float32", 2048, 0, device))):
        leaves, _ = search(engine, prompts, 0.04, 1000, [5, 5], ends)
        found[name] = [[(list(leaf.tokens), leaf.logprob) for leaf in found] for found in leaves]
    same = all([t for t, _ in a] == [t for t, _ in b] and all(abs(x - y) < 2e-3 for (_, x), (_, y) in zip(a, b))
               for a, b in zip(found["vllm"], found["transformers"]))
    return {"same_leaves": same, "leaves": [len(leaves) for leaves in found["vllm"]]}


PARTS = {"cuda_tests": cuda_tests, "training_bfloat16": lambda: training("bfloat16"), "push": push,
         "training_float16": lambda: training("float16"), "vllm_engine": vllm_engine}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-check.json")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    args = parser.parse_args()
    import torch

    report = {"device": torch.cuda.get_device_name(0) if cuda() else "no CUDA GPU", "torch": torch.__version__,
              "vllm": importlib.util.find_spec("vllm") is not None, "parts": {}}
    for name in args.parts:
        start = time.perf_counter()
        try:
            result = PARTS[name]()
        except Exception as error:  # noqa: BLE001 - a part that fails is reported, and the others still run
            result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        result["seconds"] = round(time.perf_counter() - start, 1)
        report["parts"][name] = result
        print(f"{name}: {result['status']}" + (f" ({result.get('why') or result.get('error')})"
                                               if result["status"] != "ran" else ""), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{args.out}: {sum(p['status'] == 'ran' for p in report['parts'].values())} ran, "
          f"{sum(p['status'] == 'skipped' for p in report['parts'].values())} skipped, "
          f"{sum(p['status'] == 'failed' for p in report['parts'].values())} failed")
    return 1 if any(p["status"] == "failed" for p in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
