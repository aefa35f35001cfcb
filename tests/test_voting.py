"""Voting: count first, then mean log-probability, then a fixed grid order; independent of input order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from arc_submit.data.submission import fill_attempts
from arc_submit.predict.voting import rank

A, B, C = [[1]], [[2]], [[1, 1]]


def test_count_wins_then_logprob_then_grid_order():
    ranked = rank([(A, -5.0), (B, -0.1), (A, -4.0), (C, -0.1)])
    assert [v.grid for v in ranked] == [A, B, C] or [v.grid for v in ranked] == [A, C, B]
    assert ranked[0].count == 2 and ranked[0].mean_logprob == -4.5
    # B and C tie on count and logprob: the canonical order (shape first) decides, always the same way.
    assert [v.grid for v in rank([(C, -0.1), (B, -0.1)])] == [B, C]


def test_logprob_breaks_count_ties():
    assert [v.grid for v in rank([(A, -3.0), (B, -1.0)])] == [B, A]


def test_empty_candidates_are_not_votes_and_attempts_are_padded():
    ranked = rank([([], -0.1), ([], None), (A, None)])
    assert [v.grid for v in ranked] == [A]
    assert fill_attempts([v.grid for v in ranked], B) == [A, B]  # a free place: the test input as a guess
    assert fill_attempts([v.grid for v in ranked], A) == [A, []]  # ... unless it is already there
    assert fill_attempts([], B) == [B, []]
    assert fill_attempts([A, B, C], C) == [A, B]


def test_unknown_logprobs_rank_after_known_ones():
    assert [v.grid for v in rank([(A, None), (B, -9.0)])] == [B, A]


candidate = st.tuples(
    st.sampled_from([A, B, C, [[3]], [], [[1], [1]]]), st.one_of(st.none(), st.floats(-50, 0, allow_nan=False))
)


@settings(max_examples=200, deadline=None)
@given(candidates=st.lists(candidate, max_size=12), seed=st.integers(0, 1000))
def test_ranking_does_not_depend_on_candidate_order(candidates, seed):
    shuffled = list(candidates)
    random.Random(seed).shuffle(shuffled)
    assert rank(candidates) == rank(shuffled)
    assert rank(candidates, "logprob") == rank(shuffled, "logprob")
