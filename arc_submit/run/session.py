"""The session of a run: tokenizer, trainable model, trainer and sampler, loaded and started once and
kept for every task. It joins model/ (training) and predict/ (sampling), so it sits above both; which
weights the sampler serves is the business of its ServedWeights (run/weights.py).

    session = open_session(config, progress=True)
    with session.weights.for_task(task.task_id) as weights:
        ...

Imports, inside run/: weights, memory.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from arc_submit.config import Config
from arc_submit.data.prompts import PromptBuilder
from arc_submit.model.load import check_context, load_model, prompt_builder, resolve_dtype
from arc_submit.model.resolve import ResolvedModel, resolve, set_offline
from arc_submit.model.training import Trainer, check_targets
from arc_submit.predict.sampler import Sampler, create_sampler
from arc_submit.run.weights import ServedWeights

log = logging.getLogger("arc_submit")


@dataclass
class Session:
    """The heavy state kept for the whole run: tokenizer and prompt builder, trainer, live sampler, and the
    owner of the weights it serves (ServedWeights: the trainable model, adapters, pushes)."""

    config: Config
    resolved: ResolvedModel
    sampler: Sampler
    trainer: Trainer
    builder: PromptBuilder
    device: str
    dtype: str
    weights: ServedWeights
    timings: dict = field(default_factory=dict)

    @property
    def model(self):
        """The trainable model as it is now (bare outside the weights' blocks); ServedWeights owns it."""
        return self.weights.model


# The model stack (the installed packages, not the session): what a run logs and records the versions of.
MODEL_STACK = ("torch", "transformers", "peft", "vllm")


def check_gpu_memory(config: Config, resolved: ResolvedModel) -> None:
    """Refuse, with the numbers, a model that the estimate says cannot train and sample on this GPU,
    before anything is loaded (arc_submit.run.memory)."""
    import torch

    from arc_submit.run.memory import GIB, Architecture, check_fits

    try:
        arch = Architecture.from_config(resolved.base_dir)
    except KeyError as missing:
        log.warning("GPU memory not checked: %s/config.json has no %s", resolved.base_dir, missing)
        return
    card = torch.cuda.get_device_properties(0)
    row = check_fits(arch, config, card.total_memory / GIB, card.name)
    log.info("GPU memory estimate on %s: peak %.1f of %.1f GiB, KV cache for %.1f prompts of max_seq_len", card.name,
             row["peak_gib"], row["gpu_gib"], row["full_prompts_in_kv_cache"])


def imported_versions() -> dict[str, str]:
    """The versions of the model stack's packages this process has imported (what ran, not what pip says)."""
    import sys

    return {name: sys.modules[name].__version__ for name in MODEL_STACK if name in sys.modules}


def open_session(config: Config, progress: bool, clock: Callable[[], float] = time.monotonic,
                 run_dir: Path | None = None) -> Session:
    """Load tokenizer and model and start the sampler once for the whole run."""
    set_offline()
    import torch

    timings = {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    resolved = resolve(config.model.name, config.model.base)
    check_context(resolved, config.prompt.max_seq_len)
    if device == "cuda" and config.sampling.backend == "vllm":
        check_gpu_memory(config, resolved)
    timings["model_resolve_s"] = time.perf_counter() - start
    dtype = resolve_dtype(config.model.dtype, device)
    start = time.perf_counter()
    tokenizer, model = load_model(resolved, dtype, device, config.ttft.gradient_checkpointing)
    timings["model_load_s"] = time.perf_counter() - start
    check_targets(model, config.ttft, resolved.adapter_dir)
    builder = prompt_builder(tokenizer, config.prompt)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    autocast = getattr(torch, dtype) if device == "cuda" and dtype != "float32" else None
    trainer = Trainer(config.ttft, builder, pad_id, device, autocast, clock=clock, progress=progress)
    start = time.perf_counter()
    lora_rank = config.ttft.lora_rank if config.sampling.adapter == "lora" else 0
    sampler = create_sampler(config.sampling, resolved.base_dir, dtype, config.prompt.max_seq_len,
                             config.run.seed, device, lora_rank)
    timings["engine_start_s"] = time.perf_counter() - start
    adapters = (run_dir or Path(".")) / "adapters" if config.sampling.adapter == "lora" else None
    weights = ServedWeights(config, resolved, model, sampler, builder, device, dtype, adapters)
    session = Session(config, resolved, sampler, trainer, builder, device, dtype, weights, timings)
    log.info("model stack: %s", ", ".join(f"{name} {version}" for name, version in imported_versions().items()))
    log.info("model: %s%s", resolved.base_dir, f", adapter {resolved.adapter_dir}" if resolved.adapter_dir else "")
    weights.serve_start(weights.probe())  # a given adapter merged into the engine; nothing to do for a plain base
    return session


def set_threads(config: Config) -> None:
    threads = config.run.threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
