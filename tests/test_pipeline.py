"""run/pipeline.py on a tiny random Llama with the transformers sampler: a whole run's outputs, records, resume,
seeds, the limit, the time budget over the run, and the shared adapter of ttft.scope = "all". What happens inside
one task (its modes, failures and degrading) is test_runner.py's."""

from __future__ import annotations

import json

import pytest

from arc_submit.data.submission import inputs_per_task, submission_problems
from arc_submit.errors import UserError
from arc_submit.run.runner import derive_seed
from tests.helpers.runs import TASKS, read, run


def test_a_run_writes_valid_outputs_and_a_record_per_task(tiny_model_dir, tmp_path):
    pipeline = run(tiny_model_dir, tmp_path / "run")
    submission = read(tmp_path / "run" / "submission.json")
    assert submission_problems(submission, inputs_per_task(TASKS), "s") == []
    for task in TASKS:
        record = read(tmp_path / "run" / "tasks" / f"{task.task_id}.json")
        assert record["mode"] == "full" and record["ttft"]["steps"] == 2
        assert [len(c) for c in record["candidates"]] == [2] * len(task.test)
        assert {"ttft_s", "load_s", "sample_s", "total_s"} <= set(record["timings"])  # load_s: merge + push + check
        assert record["seed"] == derive_seed(0, task.task_id)
        assert "test[0]: no answer parsed: fallback attempts" in record["reasons"]  # a random model's answers
    assert pipeline.summary["no_answer"] == {task.task_id: [0] for task in TASKS}  # said, not only in metrics
    predictions = read(tmp_path / "run" / "predictions.json")
    assert set(predictions) == {t.task_id for t in TASKS}
    metrics = read(tmp_path / "run" / "metrics.json")
    assert metrics["summary"]["tasks"] == 2 and set(metrics["per_task"]) == set(predictions)
    assert pipeline.summary["engine_starts"] == 1
    import peft
    import torch

    assert pipeline.summary["versions"]["torch"] == torch.__version__ and pipeline.summary["versions"]["peft"] == peft.__version__
    assert "[ttft]" in (tmp_path / "run" / "config.toml").read_text()


def test_rerun_skips_finished_tasks_and_redoes_missing_ones(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path / "run")
    first = {t.task_id: (tmp_path / "run" / "tasks" / f"{t.task_id}.json").read_text() for t in TASKS}
    again = run(tiny_model_dir, tmp_path / "run")
    assert again.summary["ran"] == 0 and again.session is None  # no model loaded at all
    (tmp_path / "run" / "tasks" / f"{TASKS[1].task_id}.json").unlink()
    third = run(tiny_model_dir, tmp_path / "run")
    assert third.summary["ran"] == 1
    record = (tmp_path / "run" / "tasks" / f"{TASKS[1].task_id}.json").read_text()
    assert json.loads(record)["candidates"] == json.loads(first[TASKS[1].task_id])["candidates"]


def test_a_run_dir_with_other_settings_is_refused(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path / "run")
    with pytest.raises(UserError, match="ttft.steps: 2 -> 3"):
        run(tiny_model_dir, tmp_path / "run", "ttft.steps=3")
    run(tiny_model_dir, tmp_path / "run", "run.time_budget=5000.0")  # a budget may change on resume


def test_same_seed_same_bytes_other_seed_other_draws(tiny_model_dir, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run(tiny_model_dir, tmp_path / name, seed=seed)
    assert (tmp_path / "a" / "submission.json").read_bytes() == (tmp_path / "b" / "submission.json").read_bytes()
    records = {name: read(tmp_path / name / "tasks" / f"{TASKS[0].task_id}.json") for name in "abc"}
    assert records["a"]["candidates"] == records["b"]["candidates"]
    assert records["a"]["ttft"]["losses"] == records["b"]["ttft"]["losses"]
    assert records["a"]["candidates"] != records["c"]["candidates"]


def test_a_spent_time_budget_still_ends_with_a_valid_submission(tiny_model_dir, tmp_path):
    times = iter([0.0] + [10_000.0] * 1000)
    pipeline = run(tiny_model_dir, tmp_path / "run", "run.time_budget=60.0", clock=lambda: next(times))
    assert pipeline.summary["modes"] == {"fallback": 2}
    assert submission_problems(read(tmp_path / "run" / "submission.json"), inputs_per_task(TASKS), "s") == []


def test_limit_runs_the_first_tasks_and_submits_all(tiny_model_dir, tmp_path):
    pipeline = run(tiny_model_dir, tmp_path / "run", "run.limit=1")
    assert pipeline.summary["ran"] == 1
    assert set(read(tmp_path / "run" / "submission.json")) == {t.task_id for t in TASKS}


def test_scope_all_trains_one_adapter_for_every_task(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path / "run", 'ttft.scope="all"', "ttft.steps=3")
    shared = read(tmp_path / "run" / "shared-ttft.json")
    assert shared["steps"] == 3
    for task in TASKS:
        record = read(tmp_path / "run" / "tasks" / f"{task.task_id}.json")
        assert record["ttft"] is None and len(record["candidates"][0]) == 2


def test_a_budget_that_does_not_bind_gives_the_same_bytes_on_a_slow_machine(tiny_model_dir, tmp_path):
    """A machine 500 times slower (each clock reading 5 s later instead of 0.01 s) gives the same bytes,
    as long as the budget is not reached; when it is, the records say which tasks were cut and why."""
    def clock(step: float):
        ticks = iter(range(10**7))
        return lambda: next(ticks) * step

    settings = ("ttft.steps=6", "run.time_budget=100000.0")
    run(tiny_model_dir, tmp_path / "fast", *settings, clock=clock(0.01))
    run(tiny_model_dir, tmp_path / "slow", *settings, clock=clock(5.0))
    run(tiny_model_dir, tmp_path / "none", "ttft.steps=6")
    for name in ("slow", "none"):
        for file in ("submission.json", "predictions.json"):
            assert (tmp_path / name / file).read_bytes() == (tmp_path / "fast" / file).read_bytes(), (name, file)
    binding = run(tiny_model_dir, tmp_path / "binding", "ttft.steps=6", "run.time_budget=150.0", clock=clock(5.0))
    cut = [read(tmp_path / "binding" / "tasks" / f"{t.task_id}.json") for t in TASKS]
    assert any(r["mode"] != "full" for r in cut) and binding.summary["modes"] != {"full": 2}
    assert all(r["reasons"] for r in cut if r["mode"] != "full")


def test_a_shared_adapter_trained_on_other_tasks_is_trained_again_on_resume(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path / "run", 'ttft.scope="all"', "ttft.steps=2", "run.limit=1")
    trained_on = tmp_path / "run" / "shared-adapter" / "arc-submit-tasks.json"
    assert read(trained_on) == [TASKS[0].task_id]
    run(tiny_model_dir, tmp_path / "run", 'ttft.scope="all"', "ttft.steps=2")  # the limit lifted: every task
    assert read(trained_on) == [task.task_id for task in TASKS]
