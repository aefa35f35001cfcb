"""Sampling: K augmented prompts x S samples per test input through one backend (vLLM, CUDA or CPU
build, or transformers), then decode, undo the augmentation, and keep each candidate.

    sampler = create_sampler(config.sampling, model_dir, dtype="float32", max_seq_len=8192, seed=0)
    sampler.load_weights(merged_weights(peft_model, torch.float32))
    completions = sampler.generate([Request(prompt_ids, n=1, temperature=0.0, max_new_tokens=200, seed=1)])
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arc_submit.augment import Augmentation, draw_distinct
from arc_submit.config import SamplingConfig
from arc_submit.encoders import DecodeError, GridEncoder
from arc_submit.prompts import PromptBuilder
from arc_submit.tasks import Grid, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    prompt_ids: list[int]
    n: int
    temperature: float
    max_new_tokens: int
    seed: int
    ignore_eos: bool = False  # generate exactly max_new_tokens (benchmarks compare equal work)


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int
    logprob: float | None  # cumulative log-probability of the generated tokens
    finish_reason: str


@dataclass(frozen=True)
class Candidate:
    """One sampled answer after undoing its augmentation; `grid` is [] when the text did not parse."""

    grid: Grid
    logprob: float | None
    augmentation: Augmentation
    text: str | None = None  # the raw text, kept when it did not parse
    reason: str | None = None

    def to_dict(self) -> dict:
        data = {"grid": self.grid, "logprob": self.logprob, "augmentation": self.augmentation.to_dict()}
        if self.text is not None:
            data.update(text=self.text, reason=self.reason)
        return data


def decode_candidate(completion: Completion, encoder: GridEncoder, augmentation: Augmentation) -> Candidate:
    """Parse a completion and map its grid back through the augmentation's inverse."""
    if completion.finish_reason == "length":
        reason = "hit max_new_tokens before the answer ended"
        return Candidate([], completion.logprob, augmentation, completion.text, reason)
    try:
        grid = encoder.decode(completion.text)
    except DecodeError as error:
        return Candidate([], completion.logprob, augmentation, completion.text, str(error))
    return Candidate(augmentation.invert_grid(grid), completion.logprob, augmentation)


# ----------------------------------------------------------------------------- prompts for a task


def max_new_tokens(task: Task, builder: PromptBuilder, config: SamplingConfig) -> int:
    """The answer bound: configured, or the answer-turn tokens of a square grid as large as the task's
    largest side (or 30), whichever digits it holds, plus a small margin."""
    if config.max_new_tokens:
        return config.max_new_tokens
    side = 30
    if config.max_new_tokens_from == "task":
        grids = [p.output for p in task.train] + [p.input for p in [*task.train, *task.test]]
        side = max(max(len(g), len(g[0])) for g in grids)
    fills = ([[0] * side for _ in range(side)], [[(r + c) % 10 for c in range(side)] for r in range(side)])
    return max(builder.answer_tokens(grid) for grid in fills) + 8


@dataclass(frozen=True)
class PromptJob:
    test_index: int
    augmentation: Augmentation
    prompt_ids: list[int]
    seed: int


def prompt_jobs(task: Task, builder: PromptBuilder, config: SamplingConfig, seed: int,
                answer_bound: int) -> tuple[list[PromptJob], list[int]]:
    """K augmented prompts per test input; also the test indices whose prompts could not fit."""
    rng = np.random.default_rng([seed, 2])
    jobs, too_long = [], []
    options = config.augment.draw_options()
    for test_index in range(len(task.test)):
        augmentations = draw_distinct(rng, config.augmentations, len(task.train), **options)
        fitted = 0
        for number, augmentation in enumerate(augmentations):
            augmented = augmentation.apply_task(task)
            example = builder.fit(augmented.train, augmented.test[test_index].input, reserve=answer_bound)
            if example is not None:
                fitted += 1
                jobs.append(PromptJob(test_index, augmentation, example.prompt_ids, seed + 1000 * test_index + number))
        if not fitted:
            too_long.append(test_index)
    return jobs, too_long


# ----------------------------------------------------------------------------- backends


class Sampler(ABC):
    """Generates completions for token-id prompts; weights can be swapped without a restart."""

    engine_starts = 0

    @abstractmethod
    def load_weights(self, weights: dict) -> None: ...

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[list[Completion]]: ...

    def sleep(self) -> None:
        """Give accelerator memory back while something else (training) needs it."""

    def wake(self) -> None:
        """Take the memory back before loading weights and generating."""

    def close(self) -> None:
        pass


class VLLMSampler(Sampler):
    """vLLM's engine in this process (CUDA build on GPUs, CPU build here); weights pushed in place."""

    def __init__(self, model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig, seed: int, device: str):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine must share our process for weight pushes
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its CPU hints and reload notes are noise here
        if device == "cpu":
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(config.kv_cache_gib)))
        from vllm import LLM

        options = {"gpu_memory_utilization": config.gpu_memory_utilization} if device == "cuda" else {}
        self.sleeps = device == "cuda" and config.sleep_while_training
        if self.sleeps:
            options["enable_sleep_mode"] = True
        self.llm = LLM(
            model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, max_model_len=max_seq_len, seed=seed,
            enable_prefix_caching=True, enforce_eager=config.enforce_eager, trust_remote_code=False, **options,
        )
        self.engine_starts = 1

    def load_weights(self, weights: dict) -> None:
        items = list(weights.items())
        self.llm.collective_rpc(lambda worker: push_weights(worker, items))
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        if self.sleeps:
            self.llm.sleep(level=1)  # weights to CPU memory, KV cache dropped

    def wake(self) -> None:
        if self.sleeps:
            self.llm.wake_up()

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=r.prompt_ids) for r in requests]
        params = [
            SamplingParams(n=r.n, temperature=r.temperature, max_tokens=r.max_new_tokens, logprobs=0, seed=r.seed,
                           ignore_eos=r.ignore_eos)
            for r in requests
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            [Completion(o.text, len(o.token_ids), o.cumulative_logprob, o.finish_reason or "") for o in output.outputs]
            for output in outputs
        ]

    def close(self) -> None:
        del self.llm


def push_weights(worker, items: list) -> None:
    """Load checkpoint-format weights into a live vLLM worker, in place.

    vLLM >= 0.12 has `reload_weights(weights_iterator=...)`, which also restores layouts that a backend
    repacked (the CPU build needs it); older releases (0.11, the Kaggle pin) load through the model's
    own `load_weights`, as trl's colocated mode does.
    """
    import inspect

    runner = getattr(worker, "model_runner", None) or worker.worker.model_runner
    reload = getattr(runner, "reload_weights", None)  # the worker's own wrapper only says (*args, **kwargs)
    if reload is not None and "weights_iterator" in inspect.signature(reload).parameters:
        worker.reload_weights(weights_iterator=iter(items))
    else:
        runner.model.load_weights(weights=iter(items))


class TransformersSampler(Sampler):
    """Plain transformers `generate` on a separate copy of the model that holds the merged weights."""

    def __init__(self, model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig, seed: int, device: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        self.device = device
        self.engine_starts = 1

    def load_weights(self, weights: dict) -> None:
        self.model.load_state_dict(weights, strict=True)

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        return [self._generate_one(request) for request in requests]

    def _generate_one(self, request: Request) -> list[Completion]:
        import torch

        torch.manual_seed(request.seed)
        ids = torch.tensor([request.prompt_ids], device=self.device)
        sample = request.temperature > 0
        config = self.model.generation_config
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        pad = config.pad_token_id if config.pad_token_id is not None else eos[0]
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=sample, temperature=request.temperature if sample
                else None, top_p=None, top_k=None, max_new_tokens=request.max_new_tokens,
                min_new_tokens=request.max_new_tokens if request.ignore_eos else None,
                num_return_sequences=request.n, output_scores=True, return_dict_in_generate=True, pad_token_id=pad,
            )
        scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        completions = []
        for row, sequence in enumerate(out.sequences[:, ids.shape[1]:].tolist()):
            length = None if request.ignore_eos else next((i + 1 for i, t in enumerate(sequence) if t in eos), None)
            kept = sequence[: length or len(sequence)]
            logprob = float(scores[row, : len(kept)].sum())
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            completions.append(Completion(text, len(kept), logprob, "stop" if length else "length"))
        return completions


BACKENDS: dict[str, type[Sampler]] = {"vllm": VLLMSampler, "transformers": TransformersSampler}


def create_sampler(config: SamplingConfig, model_dir: Path, dtype: str, max_seq_len: int, seed: int,
                   device: str) -> Sampler:
    return BACKENDS[config.backend](model_dir, dtype, max_seq_len, config, seed, device)
