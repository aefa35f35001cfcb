"""Submissions: validation per DESIGN.md, one problem per line naming the task; atomic writes; the validate
command's exit codes and its few lines for thousands of problems."""

from __future__ import annotations

import json
import os

import pytest

from arc_submit import files
from arc_submit.data.submission import build, entry, predictions_problems, submission_problems
from tests.helpers.cli import export_eval, run_cli

COUNTS = {"t1": 1, "t2": 2}
GOOD = {"t1": [{"attempt_1": [[1]], "attempt_2": []}],
        "t2": [{"attempt_1": [[1, 2]], "attempt_2": [[3]]}, {"attempt_1": [], "attempt_2": []}]}


def test_a_good_submission_has_no_problems():
    assert submission_problems(GOOD, COUNTS, "s.json") == []


def test_build_makes_entries_of_two_attempts():
    assert build({"t1": [[[[1]], []]]}) == {"t1": [{"attempt_1": [[1]], "attempt_2": []}]}
    with pytest.raises(ValueError, match="fill_attempts"):
        entry([[[1]], [[2]], [[3]]])


@pytest.mark.parametrize(
    "change, task, fragment",
    [
        (lambda s: s.pop("t2"), "t2", "missing"),
        (lambda s: s.update(t3=[]), "t3", "not in the challenges"),
        (lambda s: s["t2"].pop(), "t2", "1 entries for 2 test inputs"),
        (lambda s: s.update(t1={"attempt_1": [[1]]}), "t1", "not a list"),
        (lambda s: s["t1"][0].pop("attempt_2"), "t1", "no 'attempt_2'"),
        (lambda s: s["t1"][0].update(attempt_3=[]), "t1", "unknown key 'attempt_3'"),
        (lambda s: s["t1"][0].update(attempt_1=[[1, 2], [3]]), "t1", "ragged"),
        (lambda s: s["t1"][0].update(attempt_1=[[12]]), "t1", "not a colour"),
        (lambda s: s["t1"][0].update(attempt_1=None), "t1", "not a list of rows"),
        (lambda s: s["t1"].__setitem__(0, [[1]]), "t1", "not an object"),
    ],
)
def test_each_bad_submission_is_named(change, task, fragment):
    submission = json.loads(json.dumps(GOOD))
    change(submission)
    problems = submission_problems(submission, COUNTS, "s.json")
    assert any(f"task {task}" in p and fragment in p and p.startswith("s.json") for p in problems), problems


def test_predictions_problems():
    assert predictions_problems({"t1": [[[[1]], []]]}, COUNTS, "p") == []
    assert predictions_problems({"t1": [[[[1], [1, 1]]]]}, COUNTS, "p")[0].startswith("p: task t1: [0][0] row 1")
    assert "not in the solutions" in predictions_problems({"zz": [[]]}, COUNTS, "p")[0]


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "submission.json"
    files.write_json(path, GOOD)
    assert json.loads(path.read_text()) == GOOD

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        files.write_json(path, {"other": []})
    assert json.loads(path.read_text()) == GOOD  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["submission.json"]


# ----------------------------------------------------------------------------- the validate command


def test_validate_exit_codes(tiny_challenges, tmp_path):
    challenges, _ = tiny_challenges
    assert run_cli("validate", "--challenges", str(challenges)).returncode == 0
    good = {"aaaa0001": [{"attempt_1": [[0, 2]], "attempt_2": []}],
            "bbbb0002": [{"attempt_1": [[3]], "attempt_2": []}, {"attempt_1": [], "attempt_2": [[1]]}]}
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(good))
    assert run_cli("validate", "--challenges", str(challenges), "--submission", str(path)).returncode == 0
    del good["bbbb0002"][1]
    good["aaaa0001"][0]["attempt_1"] = [[1], [1, 2]]
    path.write_text(json.dumps(good))
    result = run_cli("validate", "--challenges", str(challenges), "--submission", str(path))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and "task aaaa0001" in lines[0] and "task bbbb0002" in lines[1]
    assert "Traceback" not in result.stderr


def test_thousands_of_problems_are_a_few_lines_with_counts(tmp_path):
    challenges, _ = export_eval(tmp_path)
    tasks = json.loads(challenges.read_text())
    bad = {task_id: [{"attempt_1": [["x"]], "attempt_2": "no"} for _ in task["test"]] for task_id, task in tasks.items()}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = run_cli("validate", "--challenges", str(challenges), "--submission", str(tmp_path / "bad.json"))
    out = result.stdout.strip().splitlines()
    assert result.returncode == 1 and len(out) == 2 and "more like it" in out[0]
    inputs = sum(len(task["test"]) for task in tasks.values())
    assert f"{2 * inputs} problems" in result.stderr
