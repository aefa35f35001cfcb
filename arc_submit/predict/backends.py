"""Sampling backends: token-id prompts in, completions out, through vLLM (CUDA or CPU build) or plain
transformers; the weights of a live backend are swapped in place, without a restart.

    sampler = create_sampler(config.sampling, model_dir, dtype="float32", max_seq_len=8192, seed=0, device="cpu")
    sampler.load_weights(merged_weights(peft_model, torch.float32))
    completions = sampler.generate([Request(prompt_ids, n=1, temperature=0.0, max_new_tokens=200, seed=1)])
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from arc_submit.config import SamplingConfig

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
