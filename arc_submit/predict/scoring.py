"""Scoring candidates under augmented views, for the selection rules that need it (`poe`, `nvarc`): the
log-likelihood of each distinct candidate grid as the answer to M views of the task, the same M views for
every candidate of one test input. A candidate sampled on a view, whose tokens were the grid's own answer
tokens, brings its log-likelihood there with it (its sampling log-probability), so only the other (view,
grid) pairs are computed. The transformers backend prefills a view's prompt once and scores its
candidates as one prefix tree on that cache, each distinct prefix computed once
(arc_submit.predict.prefix_scoring); vLLM 0.11 prefills each (prompt + candidate) pair, since its prompt
log-probabilities never read the prefix cache; vLLM 0.32 reads the view's prompt from its cache. On vLLM
every view of a test input goes in one call (`Sampler.batches_views`), a view at a time elsewhere.

    logprobs = view_logprobs(sampler, builder, views, grids, Serving(adapter))   # {grid_key: [logprob per view]}
    views, short = score_candidates(sampler, builder, candidates, jobs, 8, Serving(adapter, end))  # per test input
"""

from __future__ import annotations

from arc_submit.data.augment import Augmentation
from arc_submit.data.prompts import PromptBuilder
from arc_submit.data.tasks import Grid, grid_key
from arc_submit.predict.sampler import Sampler, Serving
from arc_submit.predict.candidates import Candidate, PromptJob, prompt_key


def view_logprobs(sampler: Sampler, builder: PromptBuilder, views: list[tuple[Augmentation, list[int]]],
                  grids: list[Grid], serving: Serving = Serving(),
                  known: dict[bytes, dict[tuple, float]] | None = None) -> dict[tuple, list[float]]:
    """For each grid (in the task's own orientation and colours), its log-likelihood under each view
    (augmentation, prompt ids) whose prompt leaves room for every grid's answer: every view in one
    `score_views` call where the sampler batches them, else a call per view; calls after `serving.end` are
    left out for every grid alike. `serving.beat("view 1")` or `("views 1-8")` before each call (heartbeats).
    `known`: log-likelihoods already known, {prompt_key: {grid_key: logprob}} (`sampled_logprobs`), not
    computed again."""
    result: dict[tuple, list[float]] = {grid_key(grid): [] for grid in grids}
    fitting = []  # (prompt ids, {grid_key: answer ids}, {grid_key: logprob known})
    for augmentation, prompt_ids in views:
        answers = {grid_key(grid): builder.written_ids(augmentation.apply_grid(grid)) for grid in grids}
        if len(prompt_ids) + max(len(answer) for answer in answers.values()) <= builder.max_seq_len:
            fitting.append((prompt_ids, answers, dict((known or {}).get(prompt_key(prompt_ids), {}))))
        # else: the same views for every candidate, and this one cannot hold the longest answer
    size = max(len(fitting), 1) if sampler.batches_views else 1
    for first in range(0, len(fitting), size):
        if serving.past_end():
            break
        batch = fitting[first: first + size]
        serving.beat(f"view {first + 1}" if len(batch) == 1 else f"views {first + 1}-{first + len(batch)}")
        missing = [[key for key in answers if key not in logprobs] for _, answers, logprobs in batch]
        asked = [(prompt_ids, [answers[key] for key in keys])
                 for (prompt_ids, answers, _), keys in zip(batch, missing) if keys]
        computed = iter(sampler.score_views(asked, serving.adapter) if asked else [])
        for (_, answers, logprobs), keys in zip(batch, missing):
            if keys:
                logprobs.update(zip(keys, next(computed)))
            for key in answers:
                result[key].append(logprobs[key])
    return result


def sampled_logprobs(candidates: list[Candidate]) -> dict[bytes, dict[tuple, float]]:
    """The log-likelihoods that sampling already gave: {prompt_key: {grid_key: logprob}} of every candidate
    that wrote its grid's own answer tokens on that prompt (Candidate.sampled_on)."""
    known: dict[bytes, dict[tuple, float]] = {}
    for candidate in candidates:
        if candidate.sampled_on is not None and candidate.grid:
            known.setdefault(candidate.sampled_on, {}).setdefault(grid_key(candidate.grid), candidate.logprob)
    return known


def score_candidates(sampler: Sampler, builder: PromptBuilder, candidates: list[list[Candidate]],
                     jobs: list[PromptJob], views: int,
                     serving: Serving = Serving()) -> tuple[list[dict[tuple, list[float]]], list[int]]:
    """Each test input's distinct candidate grids scored under the first `views` of its jobs' views (fewer,
    the same for every candidate, when `serving.end` comes first; a candidate sampled on one of them brings
    its log-likelihood there, `sampled_logprobs`); and the test inputs scored under fewer views than asked
    because of the end. `serving.beat` is said before each scoring call (heartbeats)."""
    scored, short = [], []
    for index, output in enumerate(candidates):
        grids = list({grid_key(c.grid): c.grid for c in output if c.grid}.values())
        chosen = [(job.augmentation, job.prompt_ids) for job in jobs if job.test_index == index]
        scores = view_logprobs(sampler, builder, chosen[:views], grids, serving.saying(f"test[{index}]"),
                               sampled_logprobs(output)) if grids else {}
        if grids and len(next(iter(scores.values()))) < min(len(chosen), views):
            short.append(index)
        scored.append(scores)
    return scored, short
