"""Selection: rank the distinct candidate grids of one test input by a named rule; the top two become
the attempts. Rules live in RULES, chosen by `voting.rule`:

- `vote`: how many candidates gave the grid, ties by the mean per-token log-probability (arc24's
  tie-break: a cumulative log-probability would favour small grids), then a fixed grid order;
- `poe`: the ARChitects' product of experts: the sum of the grid's log-likelihood as the answer under
  M augmented views of the task (the same views for every candidate);
- `nvarc`: NVARC's count minus the mean negative log-likelihood over the same M views;
- `architects`: the ARChitects' 2024 Kaggle selection (score_full_probmul_3): every candidate that gave
  the grid and every view adds 3 nats to its log-likelihood there, summed.

Every rule gives each grid a `score` (vote: its count); ranking is by score, then count, then the mean
per-token log-probability, then grid order, so a predictions file that carries the scores reproduces the
run's own selection (`python -m arc_submit metrics`).

    votes = rank(candidates, "poe", view_logprobs={grid_key(g): [-3.1, -2.7, ...], ...})
    votes, attempts, reasons = select_attempts(task, candidates, "poe", views)   # a whole task

`select_attempts` is the one path from a task's candidates to its attempts, for the runner and the
selection benchmark alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from arc_submit.data.submission import fill_attempts
from arc_submit.data.tasks import Grid, Task, grid_key


@dataclass(frozen=True)
class Vote:
    """A distinct grid: how many candidates gave it, their mean cumulative and mean per-token
    log-probability (None when unknown), and the rule's score (higher is better)."""

    grid: Grid
    count: int
    mean_logprob: float | None
    mean_token_logprob: float | None
    score: float

    def to_dict(self) -> dict:
        return {"grid": self.grid, "count": self.count, "mean_logprob": self.mean_logprob,
                "mean_token_logprob": self.mean_token_logprob, "score": self.score}

    @classmethod
    def from_dict(cls, data: dict) -> Vote:
        return cls(data["grid"], data["count"], data["mean_logprob"], data["mean_token_logprob"], data["score"])

    def sort_key(self) -> tuple:
        token_mean = -math.inf if self.mean_token_logprob is None else self.mean_token_logprob
        return (-self.score, -self.count, -token_mean, grid_key(self.grid))


@dataclass(frozen=True)
class Tally:
    grid: Grid
    count: int
    mean_logprob: float | None
    mean_token_logprob: float | None


def tally(candidates: Iterable[tuple[Grid, float | None, int]]) -> list[Tally]:
    """One Tally per distinct non-empty grid from (grid, cumulative log-probability, tokens) triples, in
    canonical grid order; `[]` candidates are skipped."""
    groups: dict[tuple, list] = {}
    for grid, logprob, tokens in candidates:
        if not grid:
            continue
        group = groups.setdefault(grid_key(grid), [grid, [], [], 0])
        if logprob is not None:
            group[1].append(logprob)
            if tokens:
                group[2].append(logprob / tokens)
        group[3] += 1
    return [Tally(grid, count, _mean(cumulative), _mean(per_token))
            for _, (grid, cumulative, per_token, count) in sorted(groups.items())]


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _vote(entry: Tally, views: list[float] | None) -> float:
    return float(entry.count)


def _poe(entry: Tally, views: list[float] | None) -> float:
    return math.fsum(views)


def _nvarc(entry: Tally, views: list[float] | None) -> float:
    return entry.count + math.fsum(views) / len(views)  # count - mean negative log-likelihood


ARCHITECTS_BASELINE = 3.0  # getter_full_probmul(3) in the ARChitects' Kaggle notebook (da-fr/arc-prize-2024)


def _architects(entry: Tally, views: list[float] | None) -> float:
    """sum over hits (log-probability + 3) + sum over views (log-likelihood + 3): their candidates' own
    log-probabilities (as count x (3 + their mean); hits whose log-probability is unknown, which DFS never
    gives, count at that mean, or at 3 when none is known) and the views' scores, as probabilities
    multiplied with a bonus for each."""
    hits = entry.count * (ARCHITECTS_BASELINE + (entry.mean_logprob or 0.0))
    return hits + math.fsum(view + ARCHITECTS_BASELINE for view in views)


# rule -> (score of a grid from its tally and its log-likelihoods under the views, whether it needs them)
RULES: dict[str, tuple[Callable[[Tally, list[float] | None], float], bool]] = {
    "vote": (_vote, False),
    "poe": (_poe, True),
    "nvarc": (_nvarc, True),
    "architects": (_architects, True),
}


def needs_views(rule: str) -> bool:
    return RULES[rule][1]


def rank(candidates: Iterable[tuple[Grid, float | None, int]], rule: str = "vote",
         view_logprobs: dict[tuple, list[float]] | None = None) -> list[Vote]:
    """Distinct non-empty grids, best first by the rule's score. `view_logprobs` maps a grid's key to its
    log-likelihoods under the M views (rules that need them). Depends only on the multiset of candidates."""
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; known: {', '.join(RULES)}")
    score, needs = RULES[rule]
    votes = []
    for entry in tally(candidates):
        views = (view_logprobs or {}).get(grid_key(entry.grid)) if needs else None
        if needs and not views:
            raise ValueError(f"rule {rule} needs the log-likelihoods of every candidate under the views")
        votes.append(Vote(entry.grid, entry.count, entry.mean_logprob, entry.mean_token_logprob, score(entry, views)))
    return sorted(votes, key=Vote.sort_key)


def rank_scored(candidates: Iterable[tuple[Grid, float | None, int, float | None]]) -> list[Grid]:
    """The ranking from candidates that carry their grid's score (a predictions file): by score, then
    count, then mean per-token log-probability, then grid order; without scores, by count."""
    candidates = list(candidates)
    scores = {grid_key(grid): score for grid, _, _, score in candidates if grid and score is not None}
    votes = [Vote(e.grid, e.count, e.mean_logprob, e.mean_token_logprob, scores.get(grid_key(e.grid), float(e.count)))
             for e in tally((grid, logprob, tokens) for grid, logprob, tokens, _ in candidates)]
    return [vote.grid for vote in sorted(votes, key=Vote.sort_key)]


def select_attempts(task: Task, candidates: list, rule: str,
                    views: list[dict[tuple, list[float]]] | None = None) -> tuple[list[list[Vote]], list, list[str]]:
    """Each test input's candidates (objects with grid, logprob, tokens) ranked by `rule`, its two attempts
    (filled when fewer than two grids were found), and what the record should say. A rule that needs
    views falls back to `vote` for the whole task when `views` is None (not scored), and for one test
    input when no view could hold one of its candidates' answers."""
    votes, reasons = [], []
    if needs_views(rule) and views is None:
        if any(c.grid for output in candidates for c in output):
            reasons.append(f"voting.rule {rule} needs the candidates scored under the views, which this task has "
                           "not: ranked by vote")
        rule = "vote"
    for index, output in enumerate(candidates):
        entries = [(c.grid, c.logprob, c.tokens) for c in output]
        scores = views[index] if needs_views(rule) else None
        if scores is not None and any(not logprobs for logprobs in scores.values()):
            reasons.append(f"test[{index}]: no view holds every candidate's answer: ranked by vote")
            votes.append(rank(entries, "vote"))
        else:
            votes.append(rank(entries, rule, scores))
    attempts = [fill_attempts([vote.grid for vote in ranked], pair.input) for pair, ranked in zip(task.test, votes)]
    return votes, attempts, reasons
