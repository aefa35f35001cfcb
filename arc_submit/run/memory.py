"""Will it fit in GPU memory? An estimate for a model size on Kaggle's GPUs (L4, T4), before a 12-hour
run: the trainable model, LoRA optimizer state, activations at max_seq_len and the answer's logits, and
the vLLM engine (weights, its own reserve, and a KV cache either of sampling.kv_cache_prompts prompts or what
its share of the GPU leaves), at peak during training and
during sampling, where two things come outside the engine's share: its CUDA graphs (captured after vLLM
sized its KV cache from the share) and, with poe/nvarc scoring, the log-softmax over the vocabulary. It fits
when the peak fits the card and the KV cache holds at least one prompt of max_seq_len (vLLM refuses to start
otherwise). A run on a GPU checks
this before its first task (`check_fits`).

    python -m arc_submit plan --memory --config kaggle-l4x4 --size 4B
    python -m arc_submit plan --memory --config kaggle-t4x2 --model /path/to/model   # its config.json

A model of the bytes that must be resident, not a measurement: allocator fragmentation and framework
overhead are a flat OVERHEAD_GIB; compare with `nvidia-smi` on the real machine when it is close.

Imports, inside run/: nothing (the session checks it on a GPU; `plan --memory` prints it). Below the estimate,
what a long run does with host memory between tasks (`release_host_memory`, `process_memory`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from arc_submit.predict.selection import needs_views

GIB = 2**30
OVERHEAD_GIB = 1.5  # CUDA context of torch and vLLM in one process, allocator slack
GRAPHS_GIB = 0.75  # CUDA graphs, captured after vLLM sized its KV cache: outside its share (not when eager)
ENGINE_SEQUENCES = 256  # vLLM's max_num_seqs: the sampler's logits of one step, in its profile
VLLM_BATCHED_TOKENS = 8192  # vLLM 0.11's max_num_batched_tokens for the LLM class on cards under 70 GiB
GPUS = {"L4": 22.5, "T4": 15.0}  # GiB a kernel can use (24 GB and 16 GB cards)
ANSWER_TOKENS = 1040  # the answer turn of a 30x30 grid with the default encoder: the most tokens that get logits


@dataclass(frozen=True)
class Architecture:
    name: str
    parameters: float
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, path: Path) -> Architecture:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        config = {**config.get("text_config", {}), **config}
        hidden, heads = config["hidden_size"], config["num_attention_heads"]
        head_dim = config.get("head_dim") or hidden // heads
        kv_heads = config.get("num_key_value_heads", heads)
        layers, intermediate, vocab = config["num_hidden_layers"], config["intermediate_size"], config["vocab_size"]
        per_layer = hidden * head_dim * (2 * heads + 2 * kv_heads) + 3 * hidden * intermediate
        embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
        return cls(path.name, layers * per_layer + embeddings, layers, hidden, intermediate, heads, kv_heads,
                   head_dim, vocab)


# Published configs (config.json on the hub) of models of the sizes the leaders ran.
REFERENCE = {
    "0.5B": Architecture("Qwen2.5-0.5B", 0.494e9, 24, 896, 4864, 14, 2, 64, 151936),
    "4B": Architecture("Qwen3-4B", 4.02e9, 36, 2560, 9728, 32, 8, 128, 151936),
    "8B": Architecture("Qwen3-8B", 8.19e9, 36, 4096, 12288, 32, 8, 128, 151936),
}


def lora_parameters(arch: Architecture, rank: int) -> float:
    """LoRA on all seven linear layers of each block: rank x (inputs + outputs) each."""
    q, kv = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    sides = (arch.hidden + q) * 2 + (arch.hidden + kv) * 2 + (arch.hidden + arch.intermediate) * 3
    return arch.layers * rank * sides


def estimate(arch: Architecture, config, gpu_gib: float) -> dict:
    """GiB at the peak of training and of sampling, and whether they fit `gpu_gib`."""
    half = 2 if config.model.dtype != "float32" else 4
    tokens = config.prompt.max_seq_len * config.ttft.batch_size
    weights = arch.parameters * half / GIB
    lora = lora_parameters(arch, config.ttft.lora_rank) * 16 / GIB  # fp32 weights, gradients, two Adam moments
    per_layer = tokens * (10 * arch.hidden + 3 * arch.intermediate) * half  # inputs kept for backward (SDPA attention)
    if config.ttft.gradient_checkpointing:
        activations = (arch.layers * tokens * arch.hidden * half + per_layer) / GIB
    else:
        activations = arch.layers * per_layer / GIB
    answer = min(tokens, ANSWER_TOKENS * config.ttft.batch_size)  # training makes logits for answer tokens only
    logits = answer * arch.vocab * (half + 4 + 4) / GIB  # logits, their float32 upcast for the loss, its gradient
    training = weights + lora + activations + logits + OVERHEAD_GIB
    reserve = engine_reserve(arch, config, half)
    kv_per_token = 2 * arch.layers * arch.kv_heads * arch.head_dim * half  # as model.load.kv_bytes_per_token
    if config.sampling.kv_cache_prompts:  # the KV cache in bytes: the engine is what it holds, whatever the share
        kv_cache = config.sampling.kv_cache_prompts * config.prompt.max_seq_len * kv_per_token / GIB
        engine = weights + reserve + kv_cache
    else:  # vLLM takes its share up front, and the KV cache is what weights and reserve leave of it
        engine = config.sampling.gpu_memory_utilization * gpu_gib
        kv_cache = max(0.0, engine - weights - reserve)
    concurrent = kv_cache * GIB / kv_per_token / config.prompt.max_seq_len  # prompts of max_seq_len held at once
    scoring = scoring_gib(arch, config)
    graphs = 0.0 if config.sampling.enforce_eager else GRAPHS_GIB
    sampling = weights + engine + graphs + scoring + OVERHEAD_GIB  # the trainable model stays resident beside it
    asleep = config.sampling.sleep_while_training
    peak = max(training, sampling) if asleep else training + engine + graphs
    # Asleep at level 1 (LoRA serving), the engine keeps its weights in pinned host memory; level 2 discards them.
    host = weights if asleep and config.sampling.adapter == "lora" else 0.0
    return {"model": arch.name, "parameters_b": round(arch.parameters / 1e9, 2), "gpu_gib": gpu_gib,
            "weights_gib": weights, "lora_optimizer_gib": lora, "activations_gib": activations, "logits_gib": logits,
            "training_gib": training, "engine_gib": engine, "engine_reserve_gib": reserve, "kv_cache_gib": kv_cache,
            "full_prompts_in_kv_cache": concurrent, "graphs_gib": graphs, "scoring_gib": scoring,
            "sampling_gib": sampling, "peak_gib": peak, "margin_gib": gpu_gib - peak, "host_gib": host,
            "fits": peak <= gpu_gib and concurrent >= 1}


def batched_tokens(config) -> int:
    return config.sampling.max_batched_tokens or VLLM_BATCHED_TOKENS


def engine_reserve(arch: Architecture, config, half: int) -> float:
    """GiB of vLLM's share that neither weights nor KV cache get: the activations of its profile run (one
    step of max_batched_tokens, a layer at a time) and the sampler's logits."""
    q, kv = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    step = batched_tokens(config) * (4 * arch.hidden + 2 * arch.intermediate + q + 2 * kv) * half
    sampler = ENGINE_SEQUENCES * arch.vocab * 4
    return (step + sampler) / GIB


def scoring_gib(arch: Architecture, config) -> float:
    """poe and nvarc score candidates with vLLM's prompt log-probabilities: float32 logits and their
    log-softmax over the whole vocabulary for every token of a step, outside the engine's share."""
    if config.sampling.backend != "vllm" or not needs_views(config.voting.rule):
        return 0.0
    return 2 * batched_tokens(config) * arch.vocab * 4 / GIB


def check_fits(arch: Architecture, config, gpu_gib: float, gpu_name: str) -> dict:
    """The estimate for this GPU; UserError with the numbers when the model does not fit it."""
    from arc_submit.errors import UserError

    row = estimate(arch, config, gpu_gib)
    if not row["fits"]:
        raise UserError(
            f"{arch.name} ({row['parameters_b']}B) does not fit {gpu_name} ({gpu_gib:.1f} GiB): peak "
            f"{row['peak_gib']:.1f} GiB (training {row['training_gib']:.1f}, sampling {row['sampling_gib']:.1f}); the "
            f"engine's {row['engine_gib']:.1f} GiB leave a KV cache of {row['kv_cache_gib']:.2f} GiB for "
            f"{row['full_prompts_in_kv_cache']:.2f} prompts of max_seq_len {config.prompt.max_seq_len} (needs 1): see "
            "`python -m arc_submit plan --memory`, then change sampling.gpu_memory_utilization (or "
            "sampling.kv_cache_prompts), sampling.max_batched_tokens or prompt.max_seq_len")
    return row


def memory_table(architectures: list[Architecture], config) -> list[dict]:
    return [estimate(arch, config, gib) | {"gpu": gpu} for arch in architectures for gpu, gib in GPUS.items()]


def format_memory(rows: list[dict]) -> str:
    columns = ("weights_gib", "lora_optimizer_gib", "activations_gib", "logits_gib", "training_gib", "engine_gib",
               "engine_reserve_gib", "kv_cache_gib", "graphs_gib", "scoring_gib", "sampling_gib", "peak_gib",
               "margin_gib", "host_gib")
    header = ["model", "gpu", *[c.removesuffix("_gib") for c in columns], "fits"]
    lines = [header] + [[row["model"], row["gpu"], *[f"{row[c]:.1f}" for c in columns],
                         "yes" if row["fits"] else "NO"] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines)


# ----------------------------------------------------------------------------- between tasks

def release_host_memory() -> None:
    """Give freed host memory back to the system after a task. Training, merging and prefilling make large
    temporary allocations; glibc keeps what they freed in its heaps, and a process's resident memory then
    sits wherever its largest recent task left it, well above what is in use (benchmarks/LOG.md), memory a
    worker beside it cannot have. Nothing is lost: the memory was free. No-op without glibc."""
    import ctypes
    import gc

    gc.collect()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def process_memory() -> dict[str, int]:
    """MiB of this process: resident now and at its peak (Linux's /proc/self/status), and on a GPU what torch's
    allocator holds now and has held at most. Logged after every task, so a run shows its own curve."""
    status = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            status[key] = value
    except OSError:  # not Linux: no reading, nothing else changes
        pass
    found = {name: int(status[key].split()[0]) // 1024 for name, key in
             (("resident_mib", "VmRSS"), ("resident_peak_mib", "VmHWM")) if key in status}
    import sys

    torch = sys.modules.get("torch")  # never imported here just to read it
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        found["cuda_mib"] = torch.cuda.memory_allocated() // 2**20
        found["cuda_peak_mib"] = torch.cuda.max_memory_allocated() // 2**20
    return found
