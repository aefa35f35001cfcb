"""Candidates of one task: K augmented prompts per test input, each completion decoded (after the prompt
format's answer prefix, text after the answer ignored) and mapped back through its augmentation's inverse.

    jobs, too_long = prompt_jobs(task, builder, config.sampling, seed, answer_reserve(task, builder, config.sampling))
    requests = requests_for(jobs, builder, config.sampling, answer_bound(builder, config.sampling))
    candidate = decode_candidate(completion, builder, job.augmentation)
    candidates, completions, cut = find_candidates(sampler, builder, task, jobs, config.sampling, Serving(adapter, end))

`find_candidates` is the one path from prompts to candidates (sampled, greedy or by DFS), for the runner
and the selection benchmark alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from arc_submit.config import SamplingConfig
from arc_submit.data.augment import Augmentation, balanced_views, draw_distinct
from arc_submit.data.encoders import DecodeError
from arc_submit.data.prompts import PromptBuilder
from arc_submit.data.tasks import MAX_SIDE, Grid, Task
from arc_submit.predict.sampler import Adapter, Completion, Request, Serving


@dataclass(frozen=True)
class Candidate:
    """One sampled answer after undoing its augmentation; `grid` is [] when the text did not parse, and
    then `text`, `reason` and `kind` (max_new_tokens, or a DecodeError kind) say why."""

    grid: Grid
    logprob: float | None  # cumulative log-probability of its tokens
    augmentation: Augmentation
    text: str | None = None  # the raw text, kept when it did not parse
    reason: str | None = None
    kind: str | None = None
    tokens: int = 0  # how many tokens the model wrote (the end of the answer included)
    # prompt_key of the prompt it was sampled on, when it wrote exactly the grid's own answer tokens
    # (PromptBuilder.written_ids): `logprob` is then the grid's log-likelihood under that prompt, and scoring
    # does not compute it again. Not kept in records (one read back is scored like any other).
    sampled_on: bytes | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        data = {"grid": self.grid, "logprob": self.logprob, "tokens": self.tokens,
                "augmentation": self.augmentation.to_dict()}
        if self.text is not None:
            data.update(text=self.text, reason=self.reason, kind=self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Candidate:
        return cls(data["grid"], data["logprob"], Augmentation.from_dict(data["augmentation"]), data.get("text"),
                   data.get("reason"), data.get("kind"), data["tokens"])


def prompt_key(prompt_ids: list[int]) -> bytes:
    """A prompt's identity, for matching a candidate with the view it was sampled on: a 128-bit digest of its
    ids (no two prompts share one in practice; the ids themselves would keep every prompt alive in the run's
    records, some 100 KB each)."""
    return hashlib.blake2b(np.asarray(prompt_ids, dtype=np.int64).tobytes(), digest_size=16).digest()


def decode_candidate(completion: Completion, builder: PromptBuilder, augmentation: Augmentation,
                     prompt: bytes | None = None) -> Candidate:
    """Parse a completion (after the format's answer prefix) and map its grid back through the
    augmentation's inverse. `prompt`: the prompt_key of the prompt it was sampled on."""
    logprob, tokens = completion.logprob, completion.tokens
    if completion.finish_reason == "length":
        reason = "hit max_new_tokens before the answer ended"
        return Candidate([], logprob, augmentation, completion.text, reason, "max_new_tokens", tokens)
    try:
        grid = builder.parse(completion.text)
    except DecodeError as error:
        return Candidate([], logprob, augmentation, completion.text, str(error), error.kind, tokens)
    own = (prompt if prompt is not None and logprob is not None and completion.token_ids
           and list(completion.token_ids) == builder.written_ids(grid) else None)
    return Candidate(augmentation.invert_grid(grid), logprob, augmentation, tokens=tokens, sampled_on=own)


def unparsed_counts(candidates: list[list[Candidate]]) -> dict[str, int]:
    """How many answers did not parse, by kind."""
    counts: dict[str, int] = {}
    for output in candidates:
        for candidate in output:
            if not candidate.grid:
                counts[candidate.kind or "unknown"] = counts.get(candidate.kind or "unknown", 0) + 1
    return dict(sorted(counts.items()))


# ----------------------------------------------------------------------------- answer room


def _square_fills(side: int) -> tuple[Grid, Grid]:
    """Two side x side grids: one colour, and all ten digits (tokenizers merge digits differently)."""
    return [[0] * side for _ in range(side)], [[(r + c) % 10 for c in range(side)] for r in range(side)]


def answer_bound(builder: PromptBuilder, config: SamplingConfig) -> int:
    """The generation cap: as configured, or the answer turn of a 30x30 grid plus a margin, so that no
    answer that fits 30x30 is ever cut by the automatic bound."""
    if config.max_new_tokens:
        return config.max_new_tokens
    return max(builder.answer_tokens(grid) for grid in _square_fills(MAX_SIDE)) + 8


def answer_reserve(task: Task, builder: PromptBuilder, config: SamplingConfig) -> int:
    """Tokens kept free for the answer when a prompt is fitted into max_seq_len: an estimate (a square
    grid of the task's largest side, or 30x30), capped by the generation bound."""
    if config.max_new_tokens_from == "grid30":
        return answer_bound(builder, config)
    grids = [p.output for p in task.train] + [p.input for p in [*task.train, *task.test]]
    side = max(max(len(g), len(g[0])) for g in grids)
    estimate = max(builder.answer_tokens(grid) for grid in _square_fills(side)) + 8
    return min(estimate, answer_bound(builder, config))


@dataclass(frozen=True)
class PromptJob:
    test_index: int
    augmentation: Augmentation
    prompt_ids: list[int]
    seed: int


def prompt_jobs(task: Task, builder: PromptBuilder, config: SamplingConfig, seed: int,
                reserve: int) -> tuple[list[PromptJob], list[int]]:
    """K augmented prompts per test input; also the test indices whose prompts could not fit."""
    rng = np.random.default_rng([seed, 2])
    jobs, too_long = [], []
    options = config.augment.draw_options()
    views = balanced_views if config.view_draw == "balanced" else draw_distinct
    for test_index in range(len(task.test)):
        augmentations = views(rng, config.augmentations, len(task.train), **options)
        fitted = 0
        for number, augmentation in enumerate(augmentations):
            augmented = augmentation.apply_task(task)
            example = builder.fit(augmented.train, augmented.test[test_index].input, reserve=reserve)
            if example is not None:
                fitted += 1
                jobs.append(PromptJob(test_index, augmentation, example.prompt_ids, seed + 1000 * test_index + number))
        if not fitted:
            too_long.append(test_index)
    return jobs, too_long


def requests_for(jobs: list[PromptJob], builder: PromptBuilder, config: SamplingConfig, bound: int,
                 adapter: Adapter | None = None) -> list[Request]:
    """One request per prompt: its answer may use all of max_seq_len the prompt leaves, up to `bound`."""
    stops = tuple(sorted(builder.stop_token_ids))
    return [Request(job.prompt_ids, config.samples, config.temperature,
                    min(bound, builder.max_seq_len - len(job.prompt_ids)), job.seed, stop_token_ids=stops,
                    adapter=adapter)
            for job in jobs]


def dfs_completions(sampler, builder: PromptBuilder, jobs: list[PromptJob], config: SamplingConfig, bound: int,
                    serving: Serving = Serving()) -> tuple[list, str]:
    """Every completion of each prompt with probability >= min_prob (see arc_submit.predict.dfs; the greedy
    completion where none clears it; the search stops at `serving.end`), as Completions, and what the record
    should say of the search ("" when it ended and every view found one above min_prob)."""
    from arc_submit.predict.dfs import search

    limits = [min(bound, builder.max_seq_len - len(job.prompt_ids)) for job in jobs]
    leaves, cut = search(sampler, [job.prompt_ids for job in jobs], config.min_prob, config.max_candidates, limits,
                         builder.stop_token_ids, serving.end, serving.clock, serving.adapter,
                         allowed=builder.answer_token_ids, on_round=lambda n: serving.beat(f"dfs round {n}"))
    decode = builder.tokenizer.decode
    floors = sum(1 for found in leaves if found and found[0].below)
    if floors:
        kept = (f"{floors} of {len(jobs)} views found nothing above min_prob {config.min_prob}: their greedy "
                "completions kept")
        cut = f"{cut}; {kept}" if cut else kept
    return [[Completion(decode(list(leaf.tokens[:-1]), skip_special_tokens=True), len(leaf.tokens), leaf.logprob,
                        "stop", leaf.tokens) for leaf in found] for found in leaves], cut


def find_candidates(sampler, builder: PromptBuilder, task: Task, jobs: list[PromptJob], config: SamplingConfig,
                    serving: Serving = Serving()) -> tuple[list[list[Candidate]], list[list[Completion]], str]:
    """Every job's completions by `config.method` (DFS stops at `serving.end`), decoded and mapped back: the
    candidates per test input, the completions per job, and why DFS stopped early ("" when it did not)."""
    bound = answer_bound(builder, config)
    cut = ""
    if not jobs:
        completions = []
    elif config.method == "dfs":
        completions, cut = dfs_completions(sampler, builder, jobs, config, bound, serving)
    else:
        completions = sampler.generate(requests_for(jobs, builder, config, bound, serving.adapter))
    candidates: list[list[Candidate]] = [[] for _ in task.test]
    for job, outputs in zip(jobs, completions):
        key = prompt_key(job.prompt_ids)
        candidates[job.test_index] += [decode_candidate(c, builder, job.augmentation, key) for c in outputs]
    return candidates, completions, cut
