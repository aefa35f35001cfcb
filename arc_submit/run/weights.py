"""One owner for the weights: the trainable model, the adapter attached to it, and the weights the sampler
serves (merged and pushed into the engine, or a LoRA adapter vLLM serves), with the shared adapter of
ttft.scope = "all". Every push is checked: the engine must have received every parameter, and its
log-probabilities on a probe must equal the trained model's within PUSH_TOLERANCE. Candidates are scored
on the engine, or on the transformers model in memory with the same weights (`voting.scorer`).

A task's weights live in a block that always ends with the model bare again:

    with session.weights.for_task(task.task_id) as weights:
        with weights.training(seed) as peft_model:      # an adapter attached, the engine asleep
            trainer.train(peft_model, [task], steps, seed)
        weights.serve_trained(session.weights.probe(task), keep=True)   # pushed (or saved for vLLM), checked
        find_candidates(session.sampler, ..., Serving(weights.adapter))
        with weights.scorer() as scorer:                # the engine, or the trained model still attached
            ...

Imports, inside run/: nothing.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from arc_submit.config import Config
from arc_submit.data.prompts import PromptBuilder
from arc_submit.data.tasks import Pair, Task
from arc_submit.model.merge import iter_base_weights, iter_merged_weights
from arc_submit.model.resolve import ResolvedModel
from arc_submit.model.training import attach_adapter, detach_adapter
from arc_submit.predict.prefix_scoring import ModelScorer
from arc_submit.predict.sampler import Adapter, PushReport, Sampler, token_logprobs

# Largest mean absolute difference per probe token between the engine's log-probabilities and the trained
# model's after a push: float32 agrees to rounding; half precision differs by its kernels' rounding.
PUSH_TOLERANCE = {"float32": 2e-3, "bfloat16": 0.1, "float16": 0.05}
PROBE_TOKENS = 96


class PushError(Exception):
    """Weights that did not take effect in the sampler: a configuration or code error, never a task's."""


class Held(enum.Enum):
    """What the sampler answers with."""

    GIVEN = "given"  # the model as given (a given adapter merged in), or the shared adapter of scope "all"
    BASE = "base"  # the bare base model, while a given adapter is not served yet
    LOADING = "loading"  # nothing servable: a push under way or failed, or weights discarded asleep
    TASK = "task"  # one task's trained weights (ServedWeights.task_id)


def scores_on_model(choice: str, backend: str, device: str, engine_reads_cache: bool) -> bool:
    """`voting.scorer`: whether candidates are scored on the model in memory. auto: the engine where it reads
    its prefix cache to score (vLLM 0.32: the sampled views' prompts are not computed again); else the model
    for vLLM on CPU, where a view's prompt is prefilled once for all its candidates instead of once per
    (view, candidate) (benchmarks/RESULTS.md); the engine on a GPU, where the memory plan counts no KV cache
    for the model beside the engine's."""
    if choice == "auto":
        return backend == "vllm" and device == "cpu" and not engine_reads_cache
    return choice == "model"


@dataclass
class Shared:
    """Scope "all": the adapter every task samples with. `weights`: merged, kept in host memory to push
    again; `adapter`: served by vLLM (LoRA serving); `folder`: saved, to attach to score on the model."""

    weights: dict | None = None
    adapter: Adapter | None = None
    folder: Path | None = None


class ServedWeights:
    """The trainable model and what the sampler serves. Outside `attached` and `for_task` blocks the model
    holds no adapter."""

    def __init__(self, config: Config, resolved: ResolvedModel, model, sampler: Sampler, builder: PromptBuilder,
                 device: str, dtype: str, adapters_dir: Path | None = None):
        self.config, self.resolved, self.model, self.sampler, self.builder = config, resolved, model, sampler, builder
        self.device, self.dtype = device, dtype
        self.adapters_dir = adapters_dir  # sampling.adapter = "lora": where each task's adapter is saved
        self.adapters_served = 0
        self.held = Held.GIVEN if resolved.adapter_dir is None else Held.BASE
        self.task_id: str | None = None  # whose weights, when held is TASK
        self.shared = Shared()

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

    @property
    def holds(self) -> str:
        """What the sampler answers with, in a word: the task's id, or given, base, loading."""
        return self.task_id if self.held is Held.TASK else self.held.value

    # -- the model

    @contextmanager
    def attached(self, folder: Path | None = None, seed: int = 0) -> Iterator:
        """The model with an adapter attached for the block (from `folder`, else a new one, initialised from
        `seed`, on top of a given adapter); bare again after it, whatever happens."""
        peft_model = attach_adapter(self.model, self.config.ttft, folder, seed)
        try:
            yield peft_model
        finally:
            self.model = detach_adapter(peft_model)

    @contextmanager
    def for_task(self, task_id: str) -> Iterator[TaskWeights]:
        """A task's weights from training to scoring; the model bare again after the block."""
        weights = TaskWeights(self, task_id)
        try:
            yield weights
        finally:
            weights.release()

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

    # -- serving

    def sleep(self) -> None:
        """The sampler asleep while training needs the memory. A sampler that discards its weights asleep holds
        nothing servable until a push: LOADING, so that a failed TTFT's task pushes the weights it samples
        with (serve_start) instead of sampling from discarded memory."""
        if self.sampler.discards_weights_asleep:
            self._hold(Held.LOADING)
        self.sampler.sleep()

    def pushed_elsewhere(self) -> None:
        """Weights were pushed into the engine past this owner (a benchmark's own push): nothing servable is
        assumed, and the next serve_start pushes the model as given again."""
        self._hold(Held.LOADING)

    def _hold(self, held: Held, task_id: str | None = None) -> None:
        self.held, self.task_id = held, task_id

    def serve_trained(self, task_id: str, peft_model, probe: list[int]) -> Adapter | None:
        """Make the sampler answer with a trained adapter: push the merged weights into the engine, or (LoRA
        serving) save the adapter for vLLM; either way checked on the probe."""
        expected = token_logprobs(peft_model, probe)
        if self.serves_lora:
            self.adapters_served += 1
            adapter = Adapter(task_id, self.adapters_served, self.adapters_dir / task_id)
            peft_model.save_pretrained(adapter.folder)
            self.check(None, probe, expected, adapter)
            return adapter
        self._hold(Held.LOADING)
        self.check(self.sampler.load_weights(iter_merged_weights(peft_model, self.torch_dtype)), probe, expected)
        self._hold(Held.TASK, task_id)
        return None

    def serve_shared(self, peft_model, probe: list[int], folder: Path | None) -> None:
        """Scope "all": the shared adapter (attached to `peft_model`, saved in `folder` when it was) served as
        the model every task starts from; its merged weights kept in host memory to push again."""
        self.shared = Shared(folder=folder)
        if self.serves_lora:
            self.shared.adapter = self.serve_trained("shared", peft_model, probe)
            return
        expected = token_logprobs(peft_model, probe)
        self._hold(Held.LOADING)
        # a whole merged model, kept to push again: in host memory, not beside the engine on the GPU
        self.shared.weights = {name: tensor.to("cpu") for name, tensor in
                               iter_merged_weights(peft_model, self.torch_dtype)}
        self.check(self.sampler.load_weights(self.shared.weights.items()), probe, expected)
        self._hold(Held.GIVEN)

    def serve_start(self, probe: list[int]) -> Adapter | None:
        """Make the sampler answer with the model as given (base, or base + its adapter), or the shared adapter
        of scope "all"; the adapter to sample with (LoRA serving), else None."""
        if self.serves_lora:
            given = self.resolved.adapter_dir
            return self.shared.adapter or (None if given is None else Adapter("given", 1_000_000, given))
        if self.held is Held.GIVEN:
            return None
        self._hold(Held.LOADING)
        if self.shared.weights is not None:
            self.sampler.load_weights(self.shared.weights.items())  # checked when it was first pushed
        elif self.resolved.adapter_dir is None:
            expected = token_logprobs(self.model, probe)
            self.check(self.sampler.load_weights(iter_base_weights(self.model, self.torch_dtype)), probe, expected)
        else:
            with self.attached(self.resolved.adapter_dir) as peft_model:
                expected = token_logprobs(peft_model, probe)
                self.check(self.sampler.load_weights(iter_merged_weights(peft_model, self.torch_dtype)), probe,
                           expected)
        self._hold(Held.GIVEN)
        return None

    # -- scoring

    @contextmanager
    def scorer(self, trained=None) -> Iterator[Sampler | ModelScorer]:
        """What scores candidates with the weights the sampler served: the engine; or, scoring on the model,
        `trained` (a task's trained adapter, still attached), else the model as served at the start (the
        shared adapter of scope "all", else the given adapter, each attached from its folder for the block,
        else the base model)."""
        if not self.scores_on_model:
            yield self.sampler
            return
        if trained is not None:
            yield ModelScorer(trained)
            return
        if self.held is not Held.GIVEN and not self.serves_lora:
            raise ValueError(f"scoring on the model: the engine holds {self.holds}'s weights, and the trained "
                             "model they came from was not kept to score on")
        if self.shared.weights is not None or self.shared.adapter is not None:
            if self.shared.folder is None:
                raise ValueError("scoring on the model needs the shared adapter's folder (ttft.scope = 'all'), "
                                 "and it was not saved")
            folder = self.shared.folder
        else:
            folder = self.resolved.adapter_dir
        if folder is None:
            yield ModelScorer(self.model)
            return
        with self.attached(folder) as peft_model:
            yield ModelScorer(peft_model)


class TaskWeights:
    """One task's weights: trained (an adapter attached for training, kept attached while its candidates are
    scored on it), then served; or the model as given. `adapter`: what the sampler is asked to sample with
    (LoRA serving), for scoring to use the same."""

    def __init__(self, owner: ServedWeights, task_id: str):
        self.owner, self.task_id = owner, task_id
        self.trained_model = None  # the model with the task's adapter attached, while it is
        self.adapter: Adapter | None = None
        self.trained = False  # the sampler serves this task's trained weights

    @contextmanager
    def training(self, seed: int) -> Iterator:
        """The model with a new adapter (from `seed`) to train, the engine asleep for the block and awake after
        it; the adapter stays attached to be served (serve_trained) unless the block fails."""
        owner = self.owner
        self.trained_model = attach_adapter(owner.model, owner.config.ttft, owner.resolved.adapter_dir, seed)
        try:
            owner.sleep()
            yield self.trained_model
        except BaseException:
            self.release()
            raise
        finally:
            owner.sampler.wake()

    def serve_trained(self, probe: list[int], keep: bool = False) -> None:
        """The trained adapter served to the sampler, checked on `probe`; `keep`: left attached for scoring on
        the model (when voting.scorer puts it there), else taken off now."""
        try:
            self.adapter = self.owner.serve_trained(self.task_id, self.trained_model, probe)
            self.trained = True
        finally:
            if not (keep and self.owner.scores_on_model):
                self.release()

    def serve_start(self, probe: list[int]) -> None:
        """The model as given served instead (no TTFT, or a failed one): the trained adapter taken off first."""
        self.release()
        self.trained = False
        self.adapter = self.owner.serve_start(probe)

    def release(self) -> None:
        """The task's adapter taken off the model (nothing to do when it is not attached)."""
        if self.trained_model is not None:
            self.owner.model = detach_adapter(self.trained_model)
            self.trained_model = None

    @contextmanager
    def scorer(self) -> Iterator[Sampler | ModelScorer]:
        """What scores this task's candidates with the weights they were sampled with."""
        with self.owner.scorer(self.trained_model) as scorer:
            yield scorer
