"""The sampler interface: token-id prompts in, completions out, whatever engine serves them (vLLM in
`vllm_sampler`, plain transformers in `transformers_sampler`, chosen by `sampling.backend`). The weights of a
live sampler are swapped in place, streamed tensor by tensor, and each push says which names it wrote and
which parameters the engine did not receive; or vLLM serves a task's LoRA adapter from a folder instead.

    sampler = create_sampler(config.sampling, model_dir, dtype="float32", max_seq_len=8192, seed=0, device="cpu")
    report = sampler.load_weights(iter_merged_weights(peft_model, torch.float32))
    completions = sampler.generate([Request(prompt_ids, n=1, temperature=0.0, max_new_tokens=200, seed=1)])
    logprobs = sampler.prompt_logprobs(probe_ids)        # to check that a push took effect
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from arc_submit.config import SamplingConfig
from arc_submit.predict.dfs import Path as SearchPath

# sampling.backend -> its sampler as "module:class" of arc_submit.predict, imported only when chosen (as cli.py
# does its commands): both samplers import this interface, which names them without importing them back
BACKENDS: dict[str, str] = {
    "vllm": "vllm_sampler:VLLMSampler",
    "transformers": "transformers_sampler:TransformersSampler",
}


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter folder for vLLM to serve; `number` tells adapters apart (1, 2, ...)."""

    name: str
    number: int
    folder: Path


def _no_beat(what: str) -> None:
    pass


@dataclass(frozen=True)
class Serving:
    """What every stage of a task passes on beside its own work: the adapter the sampler serves the task's
    weights as (LoRA serving; None where they are merged into the engine), when the task must be done (`end`,
    on `clock`; None: no limit), and the heartbeat `beat(what)` said before each engine call."""

    adapter: Adapter | None = None
    end: float | None = None
    clock: Callable[[], float] = time.monotonic
    beat: Callable[[str], None] = _no_beat

    def past_end(self) -> bool:
        return self.end is not None and self.clock() >= self.end

    def saying(self, what: str) -> Serving:
        """The same, its heartbeats prefixed with `what`."""
        return dataclasses.replace(self, beat=lambda inner: self.beat(f"{what} {inner}"))


@dataclass(frozen=True)
class Request:
    prompt_ids: list[int]
    n: int
    temperature: float
    max_new_tokens: int
    seed: int
    ignore_eos: bool = False  # generate exactly max_new_tokens (benchmarks compare equal work)
    stop_token_ids: tuple[int, ...] = ()  # tokens that end an answer, besides the model's own end of sequence
    adapter: Adapter | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int
    logprob: float | None  # cumulative log-probability of the generated tokens (of the raw logits)
    finish_reason: str  # "stop" (ended by itself) or "length" (hit max_new_tokens)
    token_ids: tuple[int, ...] = ()  # the generated tokens, the stop token included


@dataclass
class PushReport:
    """What a weight push did: the checkpoint names sent, and the engine's parameters that received
    nothing (None when the sampler cannot tell)."""

    names: list[str] = field(default_factory=list)
    missing: list[str] | None = None


class Sampler(ABC):
    """Generates completions for token-id prompts; weights can be swapped without a restart."""

    engine_starts = 0

    @abstractmethod
    def load_weights(self, weights: Iterable[tuple]) -> PushReport:
        """Load (name, tensor) pairs in checkpoint (transformers) names, in place."""

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[list[Completion]]: ...

    @abstractmethod
    def prompt_logprobs(self, prompt_ids: list[int], adapter: Adapter | None = None) -> list[float]:
        """The log-probability of each prompt token after the first, given the ones before it."""

    @abstractmethod
    def greedy_paths(self, sequences: list[list[int]], floors: list[float], max_new_tokens: list[int],
                     stop_ids: set[int], top_k: int, adapter: Adapter | None = None,
                     allowed: frozenset[int] | None = None) -> list[SearchPath]:
        """Greedy continuations of each sequence (see arc_submit.predict.dfs), each stopping at a stop token,
        at its length, or (where the sampler can) where its log-probability falls below its floor; with
        `allowed`, chosen and offered only among those tokens."""

    @abstractmethod
    def score(self, prompt_ids: list[int], answers: list[list[int]], adapter: Adapter | None = None) -> list[float]:
        """The log-likelihood of each answer (all its tokens) as the continuation of the prompt."""

    batches_views = False  # whether score_views scores several views in one batch (else: a view at a time)

    def score_views(self, views: list[tuple[list[int], list[list[int]]]],
                    adapter: Adapter | None = None) -> list[list[float]]:
        """`score` of each (prompt_ids, answers); a sampler that can batches them (`batches_views`)."""
        return [self.score(prompt_ids, answers, adapter) for prompt_ids, answers in views]

    discards_weights_asleep = False  # whether its weights are gone after sleep (pushed again after waking)

    def sleep(self) -> None:
        """Give accelerator memory back while something else (training) needs it."""

    def wake(self) -> None:
        """Take the memory back before loading weights and generating."""

    def close(self) -> None:
        pass


def create_sampler(config: SamplingConfig, model_dir: Path, dtype: str, max_seq_len: int, seed: int,
                   device: str, lora_rank: int = 0) -> Sampler:
    """The sampler that `config.backend` names, with its engine started."""
    module, name = BACKENDS[config.backend].split(":")
    sampler = getattr(importlib.import_module(f"arc_submit.predict.{module}"), name)
    return sampler(model_dir, dtype, max_seq_len, config, seed, device, lora_rank)


# ----------------------------------------------------------------------------------------------------------
# Helpers both samplers and their callers share


def path_from_steps(steps: list[tuple[int, dict[int, float]]], floor: float, stop_ids: set[int],
                    allowed: frozenset[int] | None = None) -> SearchPath:
    """A search path from (chosen token, {token: log-probability} of the step's top tokens) pairs, cut
    where its log-probability falls below the floor; alternatives only among `allowed` tokens."""
    path, spent = SearchPath(), 0.0
    for token, top in steps:
        logprob = top[token]
        if spent + logprob < floor:
            break
        path.alternatives.append([(t, lp) for t, lp in top.items() if t != token and spent + lp >= floor
                                  and (allowed is None or t in allowed)])
        path.tokens.append(token)
        path.logprobs.append(logprob)
        spent += logprob
        if token in stop_ids:
            path.finished = True
            break
    return path


@contextmanager
def cache_reading(sampler: Sampler, on: bool) -> Iterator[None]:
    """For the block, scoring on `sampler` reads vLLM's prefix cache (`on`) or prefills every (view,
    candidate) as before: the benchmarks time both. A sampler that never reads it is left as it is."""
    if not hasattr(sampler, "reads_cache_to_score"):
        yield
        return
    before, sampler.reads_cache_to_score = sampler.reads_cache_to_score, on
    try:
        yield
    finally:
        sampler.reads_cache_to_score = before


def token_logprobs(model, ids: list[int]) -> list[float]:
    """The log-probability a transformers model gives each token of `ids` after the first (what a sampler's
    `prompt_logprobs` is checked against after a push)."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, :-1].float()
    chosen = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids[1:], device=device)[:, None])
    return chosen[:, 0].tolist()


def free_accelerator_memory() -> None:
    """Collect garbage and give the CUDA cache back (nothing to do on a CPU)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
