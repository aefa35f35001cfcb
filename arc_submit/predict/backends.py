"""Sampling backends: token-id prompts in, completions out, through vLLM (CUDA or CPU build) or plain
transformers. The weights of a live backend are swapped in place, streamed tensor by tensor, and each
push says which names it wrote and which parameters the engine did not receive; or vLLM serves a task's
LoRA adapter from a folder instead.

    sampler = create_sampler(config.sampling, model_dir, dtype="float32", max_seq_len=8192, seed=0, device="cpu")
    report = sampler.load_weights(iter_merged_weights(peft_model, torch.float32))
    completions = sampler.generate([Request(prompt_ids, n=1, temperature=0.0, max_new_tokens=200, seed=1)])
    logprobs = sampler.prompt_logprobs(probe_ids)        # to check that a push took effect
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from arc_submit.config import SamplingConfig

log = logging.getLogger(__name__)
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's engine can be sized for


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter folder for vLLM to serve; `number` tells adapters apart (1, 2, ...)."""

    name: str
    number: int
    folder: Path


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
    logprob: float | None  # cumulative log-probability of the generated tokens
    finish_reason: str  # "stop" (ended by itself) or "length" (hit max_new_tokens)


@dataclass
class PushReport:
    """What a weight push did: the checkpoint names sent, and the engine's parameters that received
    nothing (None when the backend cannot tell)."""

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

    def sleep(self) -> None:
        """Give accelerator memory back while something else (training) needs it."""

    def wake(self) -> None:
        """Take the memory back before loading weights and generating."""

    def close(self) -> None:
        pass


class VLLMSampler(Sampler):
    """vLLM's engine in this process (CUDA build on GPUs, CPU build here); weights pushed in place."""

    def __init__(self, model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig, seed: int, device: str,
                 lora_rank: int = 0):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine must share our process for weight pushes
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its CPU hints and reload notes are noise here
        if device == "cpu":
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(config.kv_cache_gib)))
        from vllm import LLM

        options = {"gpu_memory_utilization": config.gpu_memory_utilization} if device == "cuda" else {}
        self.sleeps = device == "cuda" and config.sleep_while_training
        if self.sleeps:
            options["enable_sleep_mode"] = True
        if lora_rank:
            options.update(enable_lora=True, max_loras=1, max_lora_rank=next(r for r in LORA_RANKS if r >= lora_rank))
        self.llm = LLM(
            model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, max_model_len=max_seq_len, seed=seed,
            enable_prefix_caching=True, enforce_eager=config.enforce_eager, trust_remote_code=False, **options,
        )
        self.engine_starts = 1

    def load_weights(self, weights: Iterable[tuple]) -> PushReport:
        reports = self.llm.collective_rpc(lambda worker: push_weights(worker, weights))
        self.llm.reset_prefix_cache()
        return reports[0]

    asleep = False

    def sleep(self) -> None:
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=1)  # weights to CPU memory, KV cache dropped
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    @staticmethod
    def _lora(adapter: Adapter | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter.name, adapter.number, str(adapter.folder))

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=r.prompt_ids) for r in requests]
        params = [
            SamplingParams(n=r.n, temperature=r.temperature, max_tokens=r.max_new_tokens, logprobs=0, seed=r.seed,
                           ignore_eos=r.ignore_eos, stop_token_ids=list(r.stop_token_ids))
            for r in requests
        ]
        adapters = [self._lora(r.adapter) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=adapters if any(adapters) else None)
        return [
            [Completion(o.text, len(o.token_ids), o.cumulative_logprob, "length" if o.finish_reason == "length" else "stop")
             for o in output.outputs]
            for output in outputs
        ]

    def prompt_logprobs(self, prompt_ids: list[int], adapter: Adapter | None = None) -> list[float]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        [output] = self.llm.generate([TokensPrompt(prompt_token_ids=prompt_ids)], params, use_tqdm=False,
                                     lora_request=self._lora(adapter))
        return [entry[token].logprob for token, entry in zip(prompt_ids[1:], output.prompt_logprobs[1:])]

    def close(self) -> None:
        del self.llm


def push_weights(worker, weights: Iterable[tuple]) -> PushReport:
    """Load checkpoint-format weights into a live vLLM worker, in place, and report coverage.

    vLLM >= 0.12 has `reload_weights(weights_iterator=...)`, which also restores layouts that a backend
    repacked (the CPU build needs it); older releases (0.11, the Kaggle pin) load through the model's
    own `load_weights`, as trl's colocated mode does. Both end in the model's `load_weights`, which
    returns the names of the parameters it filled: those it did not fill are reported missing.
    """
    import inspect

    runner = getattr(worker, "model_runner", None) or worker.worker.model_runner
    model = runner.model
    expected = {name.replace(".base_layer.", ".") for name, _ in model.named_parameters()}
    report, loaded = PushReport(), []

    def sent():
        for name, tensor in weights:
            report.names.append(name)
            yield name, tensor

    original = model.load_weights

    def recording(stream):
        result = original(stream)
        loaded.append(result)
        return result

    model.load_weights = recording  # an instance attribute: the class's method is untouched
    try:
        reload = getattr(runner, "reload_weights", None)  # the worker's own wrapper only says (*args, **kwargs)
        if reload is not None and "weights_iterator" in inspect.signature(reload).parameters:
            worker.reload_weights(weights_iterator=sent())
        else:
            recording(sent())
    finally:
        del model.load_weights
    if loaded and loaded[0] is not None:
        report.missing = sorted(expected - set(loaded[0]))
    return report


class TransformersSampler(Sampler):
    """Plain transformers `generate` on a separate copy of the model that holds the merged weights."""

    def __init__(self, model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig, seed: int, device: str,
                 lora_rank: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        self.device = device
        self.engine_starts = 1

    def load_weights(self, weights: Iterable[tuple]) -> PushReport:
        """Copy each tensor into the parameter or buffer of the same name, one at a time."""
        import torch

        targets = dict(self.model.state_dict(keep_vars=True))
        report = PushReport()
        with torch.no_grad():
            for name, tensor in weights:
                if name not in targets:
                    raise KeyError(f"weight push: the model has no parameter {name!r}")
                targets[name].copy_(tensor)
                report.names.append(name)
        report.missing = sorted(set(targets) - set(report.names))
        return report

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        if any(r.adapter is not None for r in requests):
            raise ValueError("the transformers backend serves no LoRA adapters; use sampling.adapter = 'merged'")
        return [self._generate_one(request) for request in requests]

    def _stop_ids(self, request: Request) -> list[int]:
        config = self.model.generation_config
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        return [token for token in dict.fromkeys([*eos, *request.stop_token_ids]) if token is not None]

    def _generate_one(self, request: Request) -> list[Completion]:
        import torch

        torch.manual_seed(request.seed)
        ids = torch.tensor([request.prompt_ids], device=self.device)
        sample = request.temperature > 0
        stops = self._stop_ids(request)
        pad = self.model.generation_config.pad_token_id
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=sample, temperature=request.temperature if sample
                else None, top_p=None, top_k=None, max_new_tokens=request.max_new_tokens,
                min_new_tokens=request.max_new_tokens if request.ignore_eos else None, eos_token_id=stops,
                num_return_sequences=request.n, output_scores=True, return_dict_in_generate=True,
                pad_token_id=pad if pad is not None else stops[0],
            )
        scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        completions = []
        for row, sequence in enumerate(out.sequences[:, ids.shape[1]:].tolist()):
            length = None if request.ignore_eos else next((i + 1 for i, t in enumerate(sequence) if t in stops), None)
            kept = sequence[: length or len(sequence)]
            logprob = float(scores[row, : len(kept)].sum())
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            completions.append(Completion(text, len(kept), logprob, "stop" if length else "length"))
        return completions

    def prompt_logprobs(self, prompt_ids: list[int], adapter: Adapter | None = None) -> list[float]:
        return token_logprobs(self.model, prompt_ids)


def token_logprobs(model, ids: list[int]) -> list[float]:
    """The log-probability a transformers model gives each token of `ids` after the first."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, :-1].float()
    chosen = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids[1:], device=device)[:, None])
    return chosen[:, 0].tolist()


BACKENDS: dict[str, type[Sampler]] = {"vllm": VLLMSampler, "transformers": TransformersSampler}


def create_sampler(config: SamplingConfig, model_dir: Path, dtype: str, max_seq_len: int, seed: int,
                   device: str, lora_rank: int = 0) -> Sampler:
    return BACKENDS[config.backend](model_dir, dtype, max_seq_len, config, seed, device, lora_rank)
