"""run/runner.py: one task from plan to record, through whole runs of the tiny model. A failure costs only its
task (a sampling that fails, a training that diverges, a task too long to train on or to sample, a scoring that
fails), TTFT stops where its plan's time ends, and under run.on_error = degrade a code error in a stage degrades its
task and the run goes on."""

from __future__ import annotations

import pytest

from arc_submit.data.submission import BLANK, inputs_per_task, submission_problems
from arc_submit.run.runner import RunStopped
from tests.helpers.runs import LEARN, ONE, TASKS, read, run


def test_a_failing_sampler_costs_only_its_task(tiny_model_dir, tmp_path, monkeypatch):
    import arc_submit.run.session as session_module

    real_create = session_module.create_sampler

    def create_failing_once(*args, **kwargs):
        sampler = real_create(*args, **kwargs)
        real_generate, calls = sampler.generate, []

        def generate(requests):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("CUDA out of memory (simulated)")
            return real_generate(requests)

        sampler.generate = generate
        return sampler

    monkeypatch.setattr(session_module, "create_sampler", create_failing_once)
    run(tiny_model_dir, tmp_path / "run")
    first, second = (read(tmp_path / "run" / "tasks" / f"{t.task_id}.json") for t in TASKS)
    assert first["mode"] == "fallback" and "sampling failed: RuntimeError" in first["reasons"][0]
    assert first["attempts"][0][0] == TASKS[0].test[0].input  # fallback: the test input as a guess
    assert second["mode"] == "full" and len(second["candidates"][0]) == 2
    assert submission_problems(read(tmp_path / "run" / "submission.json"), inputs_per_task(TASKS), "s") == []


def test_diverging_training_degrades_to_sampling_without_ttft(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path / "run", "ttft.learning_rate=1e30", "ttft.max_grad_norm=0.0", "ttft.steps=4")
    for task in TASKS:
        record = read(tmp_path / "run" / "tasks" / f"{task.task_id}.json")
        assert record["mode"] == "no_ttft" and "ttft failed" in record["reasons"][0]
        assert len(record["candidates"][0]) == 2  # it still sampled, with the untouched model


def test_too_long_tasks_get_fallback_attempts(tiny_model_dir, tmp_path):
    run(tiny_model_dir, tmp_path / "run", "prompt.max_seq_len=64")
    record = read(tmp_path / "run" / "tasks" / f"{TASKS[0].task_id}.json")
    assert record["mode"] == "too_long" and "max_seq_len" in record["reasons"][0]
    assert "prompt does not fit max_seq_len even with one train pair" in record["reasons"][1]
    assert record["attempts"] == [[TASKS[0].test[0].input, BLANK]]


def test_a_task_too_long_to_train_on_is_sampled_where_its_prompt_fits(tiny_model_dir, tmp_path):
    # at 410 tokens no leave-one-out example of either task fits (424 and 412 with one demonstration), but a
    # test prompt with one demonstration and 24 tokens of answer room does (396 and 402)
    pipeline = run(tiny_model_dir, tmp_path / "run", "prompt.max_seq_len=410")
    for task in TASKS:
        record = read(tmp_path / "run" / "tasks" / f"{task.task_id}.json")
        assert record["mode"] == "too_long" and record["ttft"] is None
        assert "sampled without TTFT where a prompt fits" in record["reasons"][0]
        assert len(record["candidates"][0]) == 2 and record["prompt_tokens"] > 0  # sampled on both views
    assert pipeline.summary["modes"] == {"too_long": 2}


def test_a_passing_ttft_end_cuts_training(tiny_model_dir, tmp_path):
    """The first task has no measured rates: it may use half of the time left, then TTFT stops."""
    ticks = iter(range(0, 10**6, 10))  # every clock reading is 10 s later
    pipeline = run(tiny_model_dir, tmp_path / "run", "run.time_budget=600.0", "ttft.steps=50",
                   clock=lambda: float(next(ticks)))
    record = read(tmp_path / "run" / "tasks" / f"{TASKS[0].task_id}.json")
    assert record["mode"] == "cut" and 0 < record["ttft"]["steps"] < 50 and "time budget" in record["reasons"][0]
    assert sum(pipeline.summary["modes"].values()) == 2


def test_a_failed_scoring_keeps_the_candidates_and_says_which_rule_ranked_them(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", f"scoring:{TASKS[0].task_id}:oom")
    run(tiny_model_dir, tmp_path / "run", 'voting.rule="nvarc"', "voting.scoring_views=2")
    first, second = (read(tmp_path / "run" / "tasks" / f"{t.task_id}.json") for t in TASKS)
    assert first["mode"] == "full" and first["failed_stages"] == ["scoring"]  # sampled: not a fallback
    assert any("scoring failed: RuntimeError: CUDA out of memory" in reason for reason in first["reasons"])
    assert len(first["candidates"][0]) == 2 and not first["view_scores"]
    assert second["failed_stages"] == [] and len(second["view_scores"]) == len(second["candidates"])


def test_under_degrade_a_code_error_in_ttft_costs_only_its_task(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", f"ttft:{TASKS[0].task_id}:error")
    with pytest.raises(RunStopped, match="a configuration or code error"):  # local work: it stops (run.on_error = stop)
        run(tiny_model_dir, tmp_path / "stop")
    pipeline = run(tiny_model_dir, tmp_path / "run", 'run.on_error="degrade"')
    first, second = (read(tmp_path / "run" / "tasks" / f"{t.task_id}.json") for t in TASKS)
    assert first["mode"] == "no_ttft" and first["failed_stages"] == ["ttft"] and first["ttft"] is None
    assert "run.on_error = degrade: the task degrades, the run goes on" in first["reasons"][0]
    assert len(first["candidates"][0]) == 2  # sampled with the base model
    assert second["mode"] == "full" and list(pipeline.summary["degraded"]) == [TASKS[0].task_id]


def test_under_degrade_a_failed_sampling_is_redone_with_the_base_model(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ARC_SUBMIT_FAULTS_MARKS", str(tmp_path / "marks"))
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", f"sampling:{TASKS[0].task_id}:error-once")
    run(tiny_model_dir, tmp_path / "once", 'run.on_error="degrade"')
    record = read(tmp_path / "once" / "tasks" / f"{TASKS[0].task_id}.json")
    assert record["mode"] == "no_ttft" and record["failed_stages"] == ["sampling"] and record["ttft"]["steps"] == 2
    assert record["reasons"][-1] == "sampled again with the base model (no TTFT)" and len(record["candidates"][0]) == 2
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", f"sampling:{TASKS[0].task_id}:error")  # fails with the base too
    run(tiny_model_dir, tmp_path / "twice", 'run.on_error="degrade"')
    record = read(tmp_path / "twice" / "tasks" / f"{TASKS[0].task_id}.json")
    assert record["mode"] == "fallback" and record["failed_stages"] == ["sampling", "sampling"]
    assert record["attempts"] == [[TASKS[0].test[0].input, BLANK]]


def test_under_degrade_an_error_outside_the_stages_costs_only_its_task(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", f"task:{TASKS[0].task_id}:error")
    pipeline = run(tiny_model_dir, tmp_path / "run", 'run.on_error="degrade"')
    first, second = (read(tmp_path / "run" / "tasks" / f"{t.task_id}.json") for t in TASKS)
    assert first["mode"] == "fallback" and first["failed_stages"] == ["task"] and "ValueError" in first["reasons"][0]
    assert second["mode"] == "full" and list(pipeline.summary["degraded"]) == [TASKS[0].task_id]


def test_sampling_again_on_the_base_model_takes_the_kept_adapter_off_first(tiny_model_dir, tmp_path, monkeypatch):
    """run.on_error = degrade, sampling fails after TTFT: the adapter kept to score on comes off before the
    base model's weights are served again (else their push check fails), and the run goes on."""
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", "sampling:flip:error-once")
    monkeypatch.setenv("ARC_SUBMIT_FAULTS_MARKS", str(tmp_path / "marks"))
    run(tiny_model_dir, tmp_path / "run", *LEARN, 'voting.rule="poe"', "voting.scoring_views=2",
        'voting.scorer="model"',
        'run.on_error="degrade"', tasks=[ONE])
    record = read(tmp_path / "run" / "tasks" / "flip.json")
    assert record["mode"] == "no_ttft" and record["failed_stages"] == ["sampling"]
    assert "sampled again with the base model (no TTFT)" in record["reasons"]
