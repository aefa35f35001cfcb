"""Task records: typed and versioned, read back exactly, and never trusted when anything is off: such a
record is redone on resume with a one-line warning."""

from __future__ import annotations

import json
import logging

import pytest

from arc_submit.data.augment import Augmentation
from arc_submit.model.training import TrainResult
from arc_submit.predict.candidates import Candidate
from arc_submit.predict.selection import Vote
from arc_submit.run.record import SCHEMA_VERSION, RecordError, TaskRecord
from tests.helpers.runs import TASKS, run

RECORD = TaskRecord(
    "t1", "abc", 7, "cut", ["time budget: stopped after 1 of 2 steps"],
    ttft=TrainResult(1, [1.5], [1e-4], [(1, 1.25)], 100, 0.5, 0.25, "time budget"),
    timings={"ttft_s": 0.5, "total_s": 1.0},
    candidates=[[Candidate([[1, 2]], -0.5, Augmentation("rot90", train_order=(1, 0))),
                 Candidate([], -3.0, Augmentation(), "prose", "not a fenced block", "not_fenced", 7)]],
    votes=[[Vote([[1, 2]], 1, -0.5, -0.1, 1.0)]], view_scores=[{(1, 2, (1, 2)): [-0.5, -0.25]}],
    attempts=[[[[1, 2]], [[3]]]], failed_stages=[],
    generated_tokens=12,
    prompt_tokens=300,
)


def test_a_record_reads_back_to_itself():
    data = json.loads(json.dumps(RECORD.to_dict()))
    assert data["schema_version"] == SCHEMA_VERSION
    assert TaskRecord.from_dict(data) == RECORD


def test_a_record_of_the_version_before_is_read_under_the_names_of_now():
    """Schema 5 kept the view scores under "views"; a run dir of it resumes without redoing its tasks."""
    data = json.loads(json.dumps(RECORD.to_dict()))
    data["views"] = data.pop("view_scores")
    data["schema_version"] = 5
    assert TaskRecord.from_dict(data) == RECORD
    data["schema_version"] = 4
    with pytest.raises(RecordError, match="schema version 4, this arc-submit writes 6 and reads 5"):
        TaskRecord.from_dict(data)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.pop("schema_version"), "schema version 1"),
    (lambda d: d.update(schema_version=99), "schema version 99"),
    (lambda d: d.pop("votes"), "no 'votes'"),
    (lambda d: d.update(seed="7"), "'seed' is str"),
    (lambda d: d.update(mode="finished"), "mode 'finished'"),
    (lambda d: d["attempts"][0].pop(), "not two grids"),
    (lambda d: d["candidates"][0][0].update(grid=[[1, 12]]), "not a grid"),
    (lambda d: d["candidates"][0][0]["augmentation"].update(transform="spin"), "unknown transform"),
    (lambda d: d["ttft"].pop("losses"), "losses"),
    (lambda d: d.update(candidates=[]), "one of each per test input"),
])
def test_a_record_with_anything_off_is_refused_in_one_line(change, fragment):
    data = json.loads(json.dumps(RECORD.to_dict()))
    change(data)
    with pytest.raises(RecordError, match=fragment) as error:
        TaskRecord.from_dict(data)
    assert "\n" not in str(error.value)


def test_old_and_damaged_records_are_redone_on_resume_with_a_warning(tiny_model_dir, tmp_path, caplog):
    run(tiny_model_dir, tmp_path / "run")
    first, second = (tmp_path / "run" / "tasks" / f"{task.task_id}.json" for task in TASKS)
    old = json.loads(first.read_text())
    old.pop("schema_version")  # as arc-submit wrote records before the typed record
    first.write_text(json.dumps(old))
    damaged = json.loads(second.read_text())
    damaged.pop("attempts")
    second.write_text(json.dumps(damaged))
    with caplog.at_level(logging.WARNING, logger="arc_submit"):
        again = run(tiny_model_dir, tmp_path / "run")
    assert again.summary["ran"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(TASKS[0].task_id in w and "schema version 1" in w for w in warnings), warnings
    assert any(TASKS[1].task_id in w and "no 'attempts'" in w for w in warnings), warnings
    assert all(TaskRecord.from_dict(json.loads(p.read_text())) for p in (first, second))


def test_test_inputs_without_a_parsed_answer_are_counted_in_the_summary_and_printed(capsys):
    from dataclasses import replace

    from arc_submit.commands.run import _report
    from arc_submit.run.rundir import outcome

    good, unparsed = RECORD.candidates[0]
    two_inputs = replace(RECORD, task_id="t2", mode="full", candidates=[[good], [unparsed]], votes=RECORD.votes * 2,
                         attempts=RECORD.attempts * 2)
    dfs_found_nothing = replace(RECORD, task_id="t3", mode="full", candidates=[[]])
    fallback = replace(RECORD, task_id="t4", mode="fallback", candidates=[[]])  # degraded: reported there
    assert RECORD.unanswered == [] and two_inputs.unanswered == [1] and dfs_found_nothing.unanswered == [0]
    summary = outcome([RECORD, two_inputs, dfs_found_nothing, fallback])
    assert summary["no_answer"] == {"t2": [1], "t3": [0]} and list(summary["degraded"]) == ["t4"]
    _report({**summary, "submission": "s.json", "tasks": 4})
    out = capsys.readouterr().out
    assert "no answer parsed for 2 test inputs of 2 tasks (fallback attempts there): t2, t3" in out
