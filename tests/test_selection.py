"""Selection: vote (count, then the mean per-token log-probability, then a fixed grid order), poe and
nvarc from log-likelihoods under views; rankings independent of candidate order; balanced views."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_submit.data.augment import TRANSFORMS, balanced_views
from arc_submit.data.submission import BLANK, fill_attempts
from arc_submit.data.tasks import grid_key
from arc_submit.predict.selection import rank, rank_scored

A, B, C = [[1]], [[2]], [[1, 1]]


def test_count_wins_then_the_per_token_mean_then_grid_order():
    ranked = rank([(A, -5.0, 5), (B, -0.1, 1), (A, -4.0, 4), (C, -0.1, 1)])
    assert ranked[0].grid == A and ranked[0].count == 2 and ranked[0].mean_token_logprob == -1.0
    assert ranked[0].mean_logprob == -4.5 and ranked[0].score == 2
    # B and C tie on count and per-token mean: the canonical order (shape first) decides, always the same way.
    assert [v.grid for v in rank([(C, -0.1, 1), (B, -0.1, 1)])] == [B, C]


def test_a_tie_between_a_small_and_a_large_grid_goes_to_the_better_per_token_mean():
    small, large = [[1, 2], [3, 4]], [[5] * 10 for _ in range(10)]
    # the small grid: -3.0 over 12 tokens (-0.25 each); the large one: -11.0 over 120 tokens (-0.09 each):
    # by cumulative log-probability the small grid would win, by the per-token mean the large one does.
    ranked = rank([(small, -3.0, 12), (large, -11.0, 120)])
    assert ranked[0].grid == large


def test_empty_candidates_are_not_votes_and_attempts_are_padded():
    ranked = rank([([], -0.1, 1), ([], None, 0), (A, None, 0)])
    assert [v.grid for v in ranked] == [A]
    assert fill_attempts([v.grid for v in ranked], B) == [A, B]  # a free place: the test input as a guess
    assert fill_attempts([v.grid for v in ranked], A) == [A, BLANK]  # ... unless it is already there: a blank grid
    assert fill_attempts([], B) == [B, BLANK]
    assert fill_attempts([A, B, C], C) == [A, B]


def test_unknown_logprobs_rank_after_known_ones():
    assert [v.grid for v in rank([(A, None, 0), (B, -9.0, 3)])] == [B, A]


def test_poe_and_nvarc_scores():
    views = {grid_key(A): [-1.0, -3.0], grid_key(B): [-0.5, -0.7]}
    candidates = [(A, -0.1, 1), (A, -0.1, 1), (A, -0.1, 1), (B, -2.0, 1)]
    poe = rank(candidates, "poe", views)
    assert [v.grid for v in poe] == [B, A] and poe[0].score == pytest.approx(-1.2) and poe[1].score == -4.0
    nvarc = rank(candidates, "nvarc", views)
    assert nvarc[0].grid == A and nvarc[0].score == pytest.approx(3 - 2.0) and nvarc[1].score == pytest.approx(1 - 0.6)
    with pytest.raises(ValueError, match="needs the log-likelihoods"):
        rank(candidates, "poe", {grid_key(A): [-1.0]})


def their_probmul_3(guesses: list[dict]) -> float:
    """getter_full_probmul(3) of the ARChitects' 2024 Kaggle notebook (da-fr/arc-prize-2024, selection.py),
    written from its text: each guess has its DFS score_val and the output's scores under the views."""
    baseline = 3
    inf_score = sum(g["score_val"] + baseline for g in guesses)
    aug_score = np.mean([sum(s + baseline for s in g["score_multi_nl"]) for g in guesses])
    return inf_score + aug_score


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_architects_rule_scores_as_their_getter(data):
    grids = [A, B, C]
    picks = data.draw(st.lists(st.tuples(st.integers(0, 2), st.floats(-20, -0.01), st.integers(1, 30)), min_size=1,
                               max_size=10))
    candidates = [(grids[i], logprob, tokens) for i, logprob, tokens in picks]
    views = {grid_key(g): data.draw(st.lists(st.floats(-30, 0), min_size=8, max_size=8)) for g in grids}
    for vote in rank(candidates, "architects", views):
        guesses = [{"score_val": lp, "score_multi_nl": views[grid_key(g)]} for g, lp, _ in candidates if g == vote.grid]
        assert vote.score == pytest.approx(their_probmul_3(guesses), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(rule=st.sampled_from(["vote", "poe", "nvarc", "architects"]), data=st.data())
def test_a_predictions_file_with_scores_ranks_as_the_run_did(rule, data):
    grids = [A, B, C, [[3]]]
    picks = data.draw(st.lists(st.tuples(st.integers(0, 3), st.floats(-20, -0.01), st.integers(1, 30)), max_size=10))
    candidates = [(grids[i], logprob, tokens) for i, logprob, tokens in picks]
    views = {grid_key(g): data.draw(st.lists(st.floats(-30, 0), min_size=2, max_size=2)) for g in grids}
    ranked = rank(candidates, rule, views)
    scores = {grid_key(v.grid): v.score for v in ranked}
    in_file = [(g, lp, tokens, scores[grid_key(g)]) for g, lp, tokens in candidates]
    assert rank_scored(in_file) == [v.grid for v in ranked]


def test_balanced_views_cover_all_eight_transforms():
    for seed in range(20):
        views = balanced_views(np.random.default_rng(seed), 8, 3)
        assert sorted(v.transform for v in views) == sorted(TRANSFORMS)
        assert views[0].transform == "identity" and views[0].colours == tuple(range(10))
        assert all(v.colours[0] == 0 for v in views)
    counts = [v.transform for v in balanced_views(np.random.default_rng(1), 20, 3)]
    assert sorted(counts.count(name) for name in TRANSFORMS) == [2, 2, 2, 2, 3, 3, 3, 3]  # floor or ceil of 20/8


def test_the_background_moves_in_about_the_asked_share_of_views():
    views = balanced_views(np.random.default_rng(0), 2000, 2, move_background=0.1)
    moved = sum(v.colours[0] != 0 for v in views[1:]) / (len(views) - 1)
    assert 0.06 < moved < 0.12  # moved with probability 0.1, and then colour 0 lands on 0 again one time in 10


candidate = st.tuples(st.sampled_from([A, B, C, [[3]], [], [[1], [1]]]),
                      st.one_of(st.none(), st.floats(-50, 0, allow_nan=False)), st.integers(1, 40))


@settings(max_examples=200, deadline=None)
@given(candidates=st.lists(candidate, max_size=12), seed=st.integers(0, 1000))
def test_ranking_does_not_depend_on_candidate_order(candidates, seed):
    shuffled = list(candidates)
    random.Random(seed).shuffle(shuffled)
    assert rank(candidates) == rank(shuffled)


def test_a_task_without_its_scores_is_ranked_by_vote_and_says_so():
    from types import SimpleNamespace

    from arc_submit.data.tasks import Pair, Task

    task = Task("t", [Pair([[1]], [[2]])], [Pair([[1]])])
    candidates = [[SimpleNamespace(grid=A, logprob=-1.0, tokens=3), SimpleNamespace(grid=B, logprob=-0.5, tokens=3)]]
    from arc_submit.predict.selection import select_attempts

    votes, attempts, reasons = select_attempts(task, candidates, "nvarc", None)
    assert reasons == ["voting.rule nvarc needs the candidates scored under the views, which this task has not: "
                       "ranked by vote"]
    assert [v.grid for v in votes[0]] == [v.grid for v in rank([(A, -1.0, 3), (B, -0.5, 3)], "vote")]
    assert select_attempts(task, [[]], "nvarc", None)[2] == []  # nothing to rank: nothing to say
