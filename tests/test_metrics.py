"""Score and research metrics against hand-computed values (DESIGN.md's definitions), and the score and metrics
commands that print them."""

from __future__ import annotations

import json

import pytest

from arc_submit.data.metrics import output_metrics, research_metrics, score
from tests.helpers.cli import run_cli

T1A, T1B, T2 = [[1, 2], [3, 4]], [[5]], [[7, 7]]
SOLUTIONS = {"t1": [T1A, T1B], "t2": [T2]}


def test_score_counts_either_attempt_and_missing_tasks_as_zero():
    submission = {"t1": [{"attempt_1": [[0]], "attempt_2": T1A}, {"attempt_1": [], "attempt_2": []}]}
    result = score(submission, SOLUTIONS)
    assert result["per_task"] == {"t1": 0.5, "t2": 0.0}
    assert result["score"] == 0.25 and result["test_outputs"] == 3 and result["test_outputs_correct"] == 1
    perfect = {"t1": [{"attempt_1": T1A, "attempt_2": []}, {"attempt_1": [], "attempt_2": T1B}],
               "t2": [{"attempt_1": T2, "attempt_2": T2}]}
    assert score(perfect, SOLUTIONS)["score"] == 1.0 and score(perfect, SOLUTIONS)["tasks_solved"] == 2


def test_research_metrics_by_hand():
    predictions = {
        "t1": [[T1A, [[1, 2], [3, 0]], [], [[1]]], [[]]],
        "t2": [[T2, T2, [[7, 0]]]],
    }
    result = research_metrics(predictions, SOLUTIONS)
    t1 = result["per_task"]["t1"]
    assert t1["accuracy"] == pytest.approx(0.125)
    assert t1["correct_pixels"] == pytest.approx((1 + 0.75) / 4 / 2)
    assert t1["correct_size"] == pytest.approx(0.25)
    assert t1["pass_n"] == 0.5 and t1["unanswered"] == pytest.approx(0.625)
    # four distinct grids, one vote each: the canonical order puts [[1]] and [[1,2],[3,0]] first.
    assert t1["vote_1"] == 0 and t1["vote_2"] == 0
    t2 = result["per_task"]["t2"]
    assert t2["accuracy"] == pytest.approx(2 / 3) and t2["correct_pixels"] == pytest.approx(2.5 / 3)
    assert t2["correct_size"] == 1 and t2["vote_1"] == 1 and t2["unanswered"] == 0
    assert result["accuracy"] == pytest.approx((0.125 + 2 / 3) / 2)
    assert result["pass_n"] == 0.75 and result["vote_1"] == 0.5 and result["tasks"] == 2


def test_a_task_without_predictions_is_unanswered():
    result = research_metrics({"t2": [[T2]]}, SOLUTIONS)
    assert result["per_task"]["t1"]["unanswered"] == 1 and result["per_task"]["t1"]["pass_n"] == 0
    assert result["vote_2"] == 0.5


def test_vote_k_uses_the_majority():
    metrics = output_metrics([[[1]], [[2]], [[2]], [[3]], [[3]], [[3]]], [[2]])
    assert metrics["vote_1"] == 0 and metrics["vote_2"] == 1 and metrics["pass_n"] == 1


def test_vote_k_follows_a_given_ranking():
    candidates = [[[1]], [[2]]]
    assert output_metrics(candidates, [[2]])["vote_1"] == 0  # a tie: canonical order puts [[1]] first
    assert output_metrics(candidates, [[2]], ranked=[[[2]], [[1]]])["vote_1"] == 1


# ----------------------------------------------------------------------------- the score and metrics commands


def test_score_prints_json_last(tiny_challenges, tmp_path):
    _, solutions = tiny_challenges
    submission = {"aaaa0001": [{"attempt_1": [[9]], "attempt_2": [[0, 2]]}],
                  "bbbb0002": [{"attempt_1": [[3, 3]], "attempt_2": []}, {"attempt_1": [[4]], "attempt_2": []}]}
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(submission))
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["score"] == 0.75
    del submission["bbbb0002"]
    path.write_text(json.dumps(submission))
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert json.loads(result.stdout.strip().splitlines()[-1])["score"] == 0.5
    assert "bbbb0002" in result.stderr and "scored 0" in result.stderr


def test_score_refuses_a_malformed_submission(tiny_challenges, tmp_path):
    _, solutions = tiny_challenges
    path = tmp_path / "submission.json"
    path.write_text(json.dumps({"aaaa0001": [{"attempt_1": [[1, 2], [3]], "attempt_2": []}]}))
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert result.returncode == 2 and "task aaaa0001" in result.stderr and "ragged" in result.stderr
    path.write_text("{not json")
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert result.returncode == 2 and "submission.json: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_prints_json_last(tiny_challenges, tmp_path):
    _, solutions = tiny_challenges
    predictions = {"aaaa0001": [[[[0, 2]], [[0, 2]], []]], "bbbb0002": [[[[3, 3]]], [[[4]]]]}
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(predictions))
    result = run_cli("metrics", "--predictions", str(path), "--solutions", str(solutions))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["pass_n"] == pytest.approx(0.75)
    assert metrics["unanswered"] == pytest.approx((1 / 3) / 2)
    assert metrics["accuracy"] == pytest.approx((2 / 3 + 0.5) / 2)
