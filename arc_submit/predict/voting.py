"""Voting: rank the distinct candidate grids of one test input; the top two become the attempts.

    ranked = rank([(grid_a, -0.2), (grid_b, -1.5), (grid_a, -0.4)])
    attempts = fill_attempts([vote.grid for vote in ranked], test_input)   # arc_submit.data.submission
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from arc_submit.data.tasks import Grid, grid_key


@dataclass(frozen=True)
class Vote:
    """A distinct grid with how many candidates gave it and their mean log-probability (None if unknown)."""

    grid: Grid
    count: int
    mean_logprob: float | None

    def to_dict(self) -> dict:
        return {"grid": self.grid, "count": self.count, "mean_logprob": self.mean_logprob}

    @classmethod
    def from_dict(cls, data: dict) -> Vote:
        return cls(data["grid"], data["count"], data["mean_logprob"])


def tally(candidates: Iterable[tuple[Grid, float | None]]) -> list[Vote]:
    """One Vote per distinct non-empty grid, in canonical grid order; `[]` candidates are skipped."""
    groups: dict[tuple, tuple[Grid, list[float], int]] = {}
    for grid, logprob in candidates:
        if not grid:
            continue
        key = grid_key(grid)
        first, logprobs, count = groups.get(key, (grid, [], 0))
        if logprob is not None:
            logprobs.append(logprob)
        groups[key] = (first, logprobs, count + 1)
    votes = []
    for key in sorted(groups):
        grid, logprobs, count = groups[key]
        mean = math.fsum(logprobs) / len(logprobs) if logprobs else None
        votes.append(Vote(grid, count, mean))
    return votes


def _logprob(vote: Vote) -> float:
    return -math.inf if vote.mean_logprob is None else vote.mean_logprob


# Each rule maps a vote to a sort key, best first; ties fall back to the canonical grid order.
RULES: dict[str, Callable[[Vote], tuple]] = {
    "count": lambda vote: (-vote.count, -_logprob(vote)),
    "logprob": lambda vote: (-_logprob(vote), -vote.count),
}


def rank(candidates: Iterable[tuple[Grid, float | None]], rule: str = "count") -> list[Vote]:
    """Distinct non-empty grids, best first: by count, then mean log-probability, then grid order.

    The result depends only on the multiset of candidates, never on their order.
    """
    if rule not in RULES:
        raise ValueError(f"unknown voting rule {rule!r}; known: {', '.join(RULES)}")
    votes = tally(candidates)  # already in canonical order, and sorted() is stable
    return sorted(votes, key=RULES[rule])
