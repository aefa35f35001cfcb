"""Depth-first search over answer tokens: every completion whose probability is at least `min_prob`,
as the ARChitects (min_prob 0.17 in 2024, 0.07 in 2025) and NVARC (0.2) generate candidates.

Each branch is continued greedily to its end (depth first, with the KV cache of one forward pass per
token); on the way, every other token whose probability keeps the branch above `min_prob` starts a new
branch. Every sequence above the threshold is found exactly once: follow it from the root, and the first
token where it leaves a greedy path starts the branch that finds it. Branches of all prompts are
continued together, in rounds, until their `end`.

`max_candidates` keeps the most probable leaves, exactly: a branch is dropped only when the prompt already
has that many leaves at least as probable as the branch itself (no leaf inside it can beat them), so the
leaves are brute force's top `max_candidates` whether or not the cap binds. The root's greedy path is
followed to its end even below the threshold: when no leaf of a prompt clears `min_prob`, its greedy
completion is kept, marked `below` (DFS never answers less than greedy sampling would).

    leaves = search(sampler, [prompt_ids, ...], min_prob=0.1, max_candidates=8, max_new_tokens=[900, ...],
                    stop_ids={2})
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Path:
    """A greedy continuation of one branch: its tokens and their log-probabilities, and for each step the
    other tokens (with log-probabilities) that keep the branch above the threshold. `finished` when it
    ended with a stop token; otherwise it fell below the threshold or hit its length."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    alternatives: list[list[tuple[int, float]]] = field(default_factory=list)
    finished: bool = False


@dataclass(frozen=True)
class Branch:
    prompt: int  # index of the prompt
    prefix: tuple[int, ...]  # answer tokens chosen so far
    logprob: float  # their log-probability


@dataclass(frozen=True)
class Leaf:
    """A finished completion: its tokens (the stop token last) and its log-probability; `below`: the
    greedy completion, kept because nothing cleared `min_prob`."""

    tokens: tuple[int, ...]
    logprob: float
    below: bool = False


def top_k_for(min_prob: float) -> int:
    """How many tokens per step can reach `min_prob`: at most 1/min_prob of them, plus one for safety."""
    return int(1 / min_prob) + 1


def search(sampler, prompts: list[list[int]], min_prob: float, max_candidates: int, max_new_tokens: list[int],
           stop_ids: set[int], end: float | None = None, clock: Callable[[], float] = time.monotonic,
           adapter=None, allowed: frozenset[int] | None = None,
           on_round: Callable[[int], None] = lambda round_number: None) -> tuple[list[list[Leaf]], str]:
    """The leaves of every prompt (most probable first, at most `max_candidates`), and why the search ended
    early ("" if it did not). With `allowed`, only those tokens are followed (their log-probabilities still
    over the whole vocabulary, as NVARC's DFS keeps them). `on_round(n)` before each round (heartbeats)."""
    floor = math.log(min_prob)
    leaves: list[list[Leaf]] = [[] for _ in prompts]
    greedy: list[Leaf | None] = [None] * len(prompts)  # each root's greedy completion, when it fell below
    frontier = [Branch(index, (), 0.0) for index in range(len(prompts))]
    cut, rounds = "", 0
    while frontier:
        if end is not None and clock() >= end:
            cut = f"time budget: search stopped with {len(frontier)} branches open"
            break
        rounds += 1
        on_round(rounds)
        # a root has no floor: followed to its end whatever its probability (its greedy completion, the last resort)
        paths = sampler.greedy_paths([prompts[b.prompt] + list(b.prefix) for b in frontier],
                                     [floor - b.logprob if b.prefix else -math.inf for b in frontier],
                                     [max_new_tokens[b.prompt] - len(b.prefix) for b in frontier],
                                     stop_ids, top_k_for(min_prob), adapter, allowed=allowed)
        opened: list[Branch] = []
        for branch, path in zip(frontier, paths):
            spent = branch.logprob
            for step, token in enumerate(path.tokens):
                for other, logprob in path.alternatives[step]:
                    if spent + logprob < floor:
                        continue
                    prefix = branch.prefix + tuple(path.tokens[:step]) + (other,)
                    if other in stop_ids:
                        leaves[branch.prompt].append(Leaf(prefix, spent + logprob))
                    elif len(prefix) < max_new_tokens[branch.prompt]:
                        opened.append(Branch(branch.prompt, prefix, spent + logprob))
                spent += path.logprobs[step]
            if path.finished and spent >= floor:
                leaves[branch.prompt].append(Leaf(branch.prefix + tuple(path.tokens), spent))
            elif path.finished and not branch.prefix:
                greedy[branch.prompt] = Leaf(tuple(path.tokens), spent, below=True)
        frontier = _bounded(opened, leaves, max_candidates)
    ranked = [sorted(found, key=lambda leaf: (-leaf.logprob, leaf.tokens))[:max_candidates] for found in leaves]
    return [found or ([greedy[index]] if greedy[index] else []) for index, found in enumerate(ranked)], cut


def _bounded(opened: list[Branch], leaves: list[list[Leaf]], max_candidates: int) -> list[Branch]:
    """The branches that may still hold one of a prompt's `max_candidates` most probable leaves: those at
    least as probable as its max_candidates-th best leaf found so far (a leaf is never more probable than
    its branch)."""
    bars = []
    for found in leaves:
        best = sorted((leaf.logprob for leaf in found), reverse=True)
        bars.append(best[max_candidates - 1] if len(best) >= max_candidates else -math.inf)
    return sorted((b for b in opened if b.logprob >= bars[b.prompt]), key=lambda b: (-b.logprob, b.prompt, b.prefix))
