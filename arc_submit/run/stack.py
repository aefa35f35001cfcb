"""The live stack of a run: tokenizer, trainable model, trainer and sampler, loaded and started once and
kept for every task. It joins model/ (training) and predict/ (sampling), so it sits above both, and it
serves each task's weights to the sampler: merged and pushed into the engine (the default), or as a LoRA
adapter that vLLM serves. Every push is checked: the engine must have received every parameter, and
its log-probabilities on a probe must equal the trained model's within PUSH_TOLERANCE. Candidates are
scored on the engine, or on the transformers model in memory with the same weights (`voting.scorer`).

    stack = open_stack(config, progress=True)
    adapter = stack.serve_trained(task.task_id, peft_model, stack.probe(task))
    with stack.scorer(peft_model) as scorer:       # peft_model: the task's, still attached (None: as served)
        logprobs = scorer.score(prompt_ids, answers, adapter)

Imports, inside run/: memory only.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from arc_submit.config import Config
from arc_submit.data.prompts import PromptBuilder
from arc_submit.data.tasks import Pair, Task
from arc_submit.model.load import check_context, load_model, prompt_builder, resolve_dtype
from arc_submit.model.merge import iter_base_weights, iter_merged_weights
from arc_submit.model.resolve import ResolvedModel, resolve, set_offline
from arc_submit.model.training import Trainer, attach_adapter, check_targets, detach_adapter
from arc_submit.predict.backends import Adapter, PushReport, Sampler, create_sampler, token_logprobs
from arc_submit.predict.prefix_scoring import ModelScorer

log = logging.getLogger("arc_submit")

# Largest mean absolute difference per probe token between the engine's log-probabilities and the trained
# model's after a push: float32 agrees to ~1e-5 here; half precision differs by kernel rounding.
PUSH_TOLERANCE = {"float32": 2e-3, "bfloat16": 0.1, "float16": 0.05}
PROBE_TOKENS = 96


class PushError(Exception):
    """Weights that did not take effect in the sampler: a configuration or code error, never a task's."""


def scores_on_model(choice: str, backend: str, device: str, engine_reads_cache: bool) -> bool:
    """`voting.scorer`: whether candidates are scored on the model in memory. auto: the engine where it reads
    its prefix cache to score (vLLM 0.32; the sampled views' prompts are not computed again: measured
    faster than the model on CPU); else the model for vLLM on CPU, where a view's prompt prefilled once for
    all its candidates measured 2.7-3.4x faster than a prefill per (view, candidate); the engine on a GPU,
    where nothing was measured and the memory plan counts no KV cache for the model beside the engine's."""
    if choice == "auto":
        return backend == "vllm" and device == "cpu" and not engine_reads_cache
    return choice == "model"


@dataclass
class Stack:
    """The heavy state kept for the whole run: tokenizer, training model, live sampler."""

    config: Config
    resolved: ResolvedModel
    model: object
    sampler: Sampler
    trainer: Trainer
    builder: PromptBuilder
    device: str
    dtype: str
    engine_holds: str = "start"  # "start" (the model as given) or the task id whose weights are loaded
    shared_weights: dict | None = None  # scope "all": the weights every task samples with (merged)
    shared_adapter: Adapter | None = None  # scope "all" with LoRA serving
    shared_adapter_dir: Path | None = None  # scope "all": the shared adapter's folder (scoring on the model)
    adapters_dir: Path | None = None  # sampling.adapter = "lora": where each task's adapter is saved
    adapters_served: int = 0
    timings: dict = field(default_factory=dict)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    @property
    def serves_lora(self) -> bool:
        return self.config.sampling.adapter == "lora"

    @property
    def scores_on_model(self) -> bool:
        """Candidates scored on the transformers model in memory rather than on the engine (`voting.scorer`)."""
        return scores_on_model(self.config.voting.scorer, self.config.sampling.backend, self.device,
                               getattr(self.sampler, "scores_from_cache", False))

    @contextmanager
    def scorer(self, trained=None) -> Iterator[Sampler | ModelScorer]:
        """What scores candidates with the weights the sampler served: the engine; or, scoring on the model,
        `trained` (the task's trained adapter, still attached), else the model as served at the start (the
        shared adapter of scope 'all', else the given adapter, each attached from its folder for the
        block, else the base model)."""
        if not self.scores_on_model:
            yield self.sampler
            return
        if trained is not None:
            yield ModelScorer(trained)
            return
        if self.engine_holds != "start" and not self.serves_lora:
            raise ValueError(f"scoring on the model: the engine holds {self.engine_holds}'s weights, and the "
                             "trained model they came from was not kept to score on")
        if self.shared_weights is not None or self.shared_adapter is not None:
            if self.shared_adapter_dir is None:
                raise ValueError("scoring on the model needs the shared adapter's folder (ttft.scope = 'all'), "
                                 "and it was not saved")
            folder = self.shared_adapter_dir
        else:
            folder = self.resolved.adapter_dir
        if folder is None:
            yield ModelScorer(self.model)
            return
        peft_model = attach_adapter(self.model, self.config.ttft, folder)
        try:
            yield ModelScorer(peft_model)
        finally:
            self.model = detach_adapter(peft_model)

    # -- probes

    def probe(self, task: Task | None = None) -> list[int]:
        """A short token sequence in the task's format (the last PROBE_TOKENS of a leave-one-out example)."""
        pairs = task.train if task is not None else [Pair([[1, 2], [3, 4]], [[4, 3], [2, 1]])]
        example = self.builder.render(pairs[1:] or pairs, pairs[0].input, pairs[0].output)
        return (example.prompt_ids + example.answer_ids)[-PROBE_TOKENS:]

    def check(self, report: PushReport | None, probe: list[int], expected: list[float],
              adapter: Adapter | None = None) -> None:
        """PushError unless the engine received every parameter and answers like the trained model."""
        if report is not None and report.missing:
            raise PushError(f"weight push: the engine received nothing for {len(report.missing)} parameters "
                            f"(e.g. {', '.join(report.missing[:3])}): the pushed names do not match the model")
        if not self.config.sampling.check_pushes:
            return
        engine = self.sampler.prompt_logprobs(probe, adapter)
        for whose, values in (("the trained model's", expected), ("the engine's", engine)):
            broken = [value for value in values if not math.isfinite(value)]
            if broken:  # a NaN would pass any comparison with the tolerance below
                raise PushError(f"weight push: {whose} log-probabilities on a probe are not finite ({len(broken)} of "
                                f"{len(values)}, e.g. {broken[0]}) in {self.dtype}: the weights are broken (an "
                                "overflow in half precision?)")
        difference = statistics.fmean(abs(a - b) for a, b in zip(engine, expected))
        tolerance = PUSH_TOLERANCE[self.dtype]
        if difference > tolerance:
            raise PushError(f"weight push: the engine's log-probabilities differ from the trained model's by "
                            f"{difference:.4f} per token on a probe (tolerance {tolerance} in {self.dtype}): the "
                            "weights did not take effect")

    # -- serving weights

    def sleep(self) -> None:
        """The sampler asleep while training needs the memory. A sampler that discards its weights asleep holds
        nothing servable until a push: the state says "loading", so that a failed TTFT's task pushes the
        weights it samples with (serve_start) instead of sampling from discarded memory."""
        if self.sampler.discards_weights_asleep:
            self.engine_holds = "loading"
        self.sampler.sleep()

    def serve_trained(self, task_id: str, peft_model, probe: list[int], keep: bool = False) -> Adapter | None:
        """Make the sampler answer with the trained adapter: push the merged weights into the engine, or
        (LoRA serving) save the adapter for vLLM; either way checked on the probe. `keep`: the weights
        of scope 'all', kept to push again."""
        expected = token_logprobs(peft_model, probe)
        if self.serves_lora:
            self.adapters_served += 1
            adapter = Adapter(task_id, self.adapters_served, self.adapters_dir / task_id)
            peft_model.save_pretrained(adapter.folder)
            self.check(None, probe, expected, adapter)
            return adapter
        self.engine_holds = "loading"
        weights = iter_merged_weights(peft_model, self.torch_dtype)
        if keep:  # a whole merged model, kept to push again: in host memory, not beside the engine on the GPU
            self.shared_weights = {name: tensor.to("cpu") for name, tensor in weights}
            weights = self.shared_weights.items()
        self.check(self.sampler.load_weights(weights), probe, expected)
        self.engine_holds = task_id if not keep else "start"
        return None

    def serve_start(self, probe: list[int]) -> Adapter | None:
        """Make the sampler answer with the model as given (base, or base + its adapter), or the shared
        adapter of scope 'all'."""
        if self.serves_lora:
            given = self.resolved.adapter_dir
            return self.shared_adapter or (None if given is None else Adapter("given", 1_000_000, given))
        if self.engine_holds == "start":
            return None
        self.engine_holds = "loading"
        if self.shared_weights is not None:
            self.sampler.load_weights(self.shared_weights.items())  # checked when it was first pushed
        elif self.resolved.adapter_dir is None:
            expected = token_logprobs(self.model, probe)
            self.check(self.sampler.load_weights(iter_base_weights(self.model, self.torch_dtype)), probe, expected)
        else:
            peft_model = attach_adapter(self.model, self.config.ttft, self.resolved.adapter_dir)
            try:
                expected = token_logprobs(peft_model, probe)
                report = self.sampler.load_weights(iter_merged_weights(peft_model, self.torch_dtype))
                self.check(report, probe, expected)
            finally:
                self.model = detach_adapter(peft_model)
        self.engine_holds = "start"
        return None


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


def open_stack(config: Config, progress: bool, clock: Callable[[], float] = time.monotonic,
               run_dir: Path | None = None) -> Stack:
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
    stack = Stack(config, resolved, model, sampler, trainer, builder, device, dtype, adapters_dir=adapters,
                  engine_holds="start" if resolved.adapter_dir is None else "base", timings=timings)
    log.info("model stack: %s", ", ".join(f"{name} {version}" for name, version in imported_versions().items()))
    log.info("model: %s%s", resolved.base_dir, f", adapter {resolved.adapter_dir}" if resolved.adapter_dir else "")
    stack.serve_start(stack.probe())  # a given adapter merged into the engine; nothing to do for a plain base
    return stack


def set_threads(config: Config) -> None:
    threads = config.run.threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
