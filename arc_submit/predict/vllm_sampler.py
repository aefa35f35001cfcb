"""The vLLM sampler: vLLM's engine in this process (its CUDA build on GPUs, its CPU build here), weights pushed
into it in place (`push_weights`) or a task's LoRA adapter served from a folder, and answers scored from its
prompt log-probabilities, reading its prefix cache where the build can (what each build needs: vllm_versions).

    sampler = VLLMSampler(model_dir, "float32", 8192, config.sampling, seed=0, device="cpu")
    report = sampler.load_weights(iter_merged_weights(peft_model, torch.float32))
    scores = sampler.score_views([(prompt_ids, [answer_ids, ...]), ...])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path

from arc_submit.config import SamplingConfig
from arc_submit.errors import EngineBroken, UserError
from arc_submit.model.load import kv_bytes_per_token
from arc_submit.predict.dfs import Path as SearchPath
from arc_submit.predict.sampler import (Adapter, Completion, PushReport, Request, Sampler, free_accelerator_memory,
                                        path_from_steps)
from arc_submit.predict.vllm_versions import prepare

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's engine can be sized for
MAX_LOGPROBS = 32  # top tokens vLLM may report per step: DFS needs 1/min_prob + 1 of them


class VLLMSampler(Sampler):
    """vLLM's engine in this process (CUDA build on GPUs, CPU build here); weights pushed in place."""

    def __init__(self, model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig, seed: int, device: str,
                 lora_rank: int = 0):
        build = prepare(config, device)  # vLLM's environment, and what this build can do or refuses
        from vllm import LLM

        from arc_submit.predict.floor_stop import FloorStop

        self.can_score_from_cache = build.scores_from_cache
        self.sleeps = device == "cuda" and config.sleep_while_training
        self.sleep_level = 1 if lora_rank else 2
        self.discards_weights_asleep = self.sleeps and self.sleep_level == 2
        options = {**build.engine_options(config, max_seq_len),
                   **self._options(model_dir, dtype, max_seq_len, config, device, lora_rank)}
        self.llm = LLM(
            model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, max_model_len=max_seq_len, seed=seed,
            enable_prefix_caching=True, enforce_eager=config.enforce_eager, trust_remote_code=False,
            max_logprobs=MAX_LOGPROBS, logits_processors=[FloorStop], use_tqdm_on_load=False, **options,
        )
        self.engine_starts = 1
        self.seeded_call_tokens = build.seeded_call_tokens(self.llm.llm_engine.vllm_config.scheduler_config)
        self._warm_logprobs()

    def _options(self, model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig, device: str,
                 lora_rank: int) -> dict:
        """The engine's options for the card's memory, sleep and LoRA serving (the build's own: VLLMBuild)."""
        options = {"gpu_memory_utilization": config.gpu_memory_utilization} if device == "cuda" else {}
        if device == "cuda" and config.kv_cache_prompts:
            options["kv_cache_memory_bytes"] = kv_cache_bytes(model_dir, dtype, max_seq_len, config)
        if self.sleeps:
            options["enable_sleep_mode"] = True
        if lora_rank:
            options.update(enable_lora=True, max_loras=1, max_lora_rank=next(r for r in LORA_RANKS if r >= lora_rank))
        return options

    def _warm_logprobs(self) -> None:
        """The engine's first request with log-probabilities compiles vLLM's log-probability kernels, which
        every run needs (sampling, push probes, scoring): paid here, with the engine's start, and not by the
        first task's push check (benchmarks/RESULTS.md, "A task's time outside training and generation")."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=2, temperature=0.0, logprobs=0, prompt_logprobs=0, ignore_eos=True)
        self.llm.generate([TokensPrompt(prompt_token_ids=[0, 1, 2, 3])], params, use_tqdm=False)
        self.llm.reset_prefix_cache()

    broken: str | None = None  # why the engine is not used again
    seeded_call_tokens: int | None = None  # vLLM 0.11 on CPU: the prompt tokens one call of seeded sampling holds
    cuts_branches = True  # DFS branches end at their floor (FloorStop); `bench` turns it off to compare
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
    # Asleep, level 1 keeps a pinned host copy of the weights (a worker's whole model, in host memory) and copies
    # them each way; level 2 discards them, which costs nothing where every task's merged weights are pushed
    # after waking anyway (vLLM keeps the model's buffers). LoRA serving samples on the base weights: level 1.
    sleep_level = 2

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

    def greedy_paths(self, sequences: list[list[int]], floors: list[float], max_new_tokens: list[int],
                     stop_ids: set[int], top_k: int, adapter: Adapter | None = None,
                     allowed: frozenset[int] | None = None) -> list[SearchPath]:
        """vLLM continues each sequence greedily, reporting the top tokens of every step (log-probabilities of
        the raw logits, before the `allowed` mask); a sequence with a finite floor is ended by `FloorStop`
        the step it falls below it (when a stop token is allowed to end it), so a branch costs only the
        tokens it is worth. Prefix caching shares the prompt's KV cache between branches."""
        from vllm import SamplingParams

        from arc_submit.predict.floor_stop import ALLOWED, FLOOR, STOP

        top_k = min(top_k, self.llm.llm_engine.model_config.get_vocab_size())  # NVARC's has 16 tokens
        stop = min((t for t in stop_ids if allowed is None or t in allowed), default=None)
        answer_ids = sorted(allowed) if allowed is not None else None
        only = {"allowed_token_ids": answer_ids} if allowed is not None else {}
        params = []
        for floor, limit in zip(floors, max_new_tokens):
            if self.cuts_branches and stop is not None and floor > -math.inf:  # the cut masks the answer tokens itself
                extra = {"extra_args": {FLOOR: floor, STOP: stop, ALLOWED: answer_ids}}
            else:
                extra = only
            params.append(SamplingParams(temperature=0.0, max_tokens=limit, logprobs=top_k,
                                         stop_token_ids=sorted(stop_ids), **extra))
        outputs = self._run(sequences, params, self._lora(adapter))
        paths = []
        for output, floor in zip(outputs, floors):
            [completion] = output.outputs
            self.branch_tokens += len(completion.token_ids)
            steps = [(token, {t: entry.logprob for t, entry in top.items()})
                     for token, top in zip(completion.token_ids, completion.logprobs)]
            paths.append(path_from_steps(steps, floor, stop_ids, allowed))
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
