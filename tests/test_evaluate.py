"""The evaluate and variability studies (studies/evaluate.py, studies/plots.py, commands/studyflags.py): a row per
checkpoint or seed, the spread over seeds, the plots at their fixed sizes, degraded runs named in comparisons, and
no time budget unless one is given (tiny model; the smoke-preset runs are in test_e2e.py)."""

from __future__ import annotations

import json

import pytest

from arc_submit.studies.evaluate import checkpoint_step, format_table, spread
from arc_submit.studies.plots import plot_checkpoints, plot_spread
from tests.helpers.cli import run_cli
from tests.helpers.studies import png_size, tiny_toml


def test_plots_have_fixed_sizes(tmp_path):
    rows = [{"step": s, "score": s / 4, "vote_2": 0.5, "pass_n": 0.5, "accuracy": 0.2, "correct_pixels": 0.7,
             "correct_size": 1.0, "unanswered": 0.0, "vote_1": 0.25, "ttft_loss": 1 / s, "eval_loss": float("nan")}
            for s in (1, 2, 3)]
    plot_checkpoints(rows, tmp_path / "c.png")
    plot_spread(rows, tmp_path / "s.png")
    assert png_size((tmp_path / "c.png").read_bytes()) == (1200, 450)
    assert png_size((tmp_path / "s.png").read_bytes()) == (1000, 450)


def test_spread_and_table():
    rows = [{"score": 0.5, "accuracy": 0.1}, {"score": 1.0, "accuracy": 0.3}]
    stats = {row["statistic"]: row for row in spread(rows, ("score", "accuracy"))}
    assert stats["mean"]["score"] == 0.75 and stats["std"]["score"] == pytest.approx(0.353553, abs=1e-6)
    assert stats["min"]["accuracy"] == 0.1 and stats["max"]["accuracy"] == 0.3
    assert "0.7500" in format_table(list(stats.values()), "statistic", ("score",))


def test_checkpoint_steps_come_from_trainer_state_or_the_name(tmp_path):
    (tmp_path / "checkpoint-300").mkdir()
    assert checkpoint_step(str(tmp_path / "checkpoint-300")) == 300
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "trainer_state.json").write_text(json.dumps({"global_step": 900}))
    assert checkpoint_step(str(tmp_path / "final")) == 900 and checkpoint_step("smollm2-135m") is None


@pytest.mark.slow
def test_evaluate_gives_a_row_per_checkpoint_and_a_plot(tiny_model_dir, tmp_path):
    import shutil

    for step in (10, 20):
        shutil.copytree(tiny_model_dir, tmp_path / "ckpt" / f"checkpoint-{step}")
    result = run_cli("evaluate", "--config", str(tiny_toml(tmp_path, tiny_model_dir)), "--dataset", "arc-agi-1-eval",
                     "--smallest", "1", "--model", str(tmp_path / "ckpt" / "checkpoint-10"), "--model",
                     str(tmp_path / "ckpt" / "checkpoint-20"), "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [row["step"] for row in rows] == [10, 20] and all(row["tasks"] == 1 for row in rows)
    run_metrics = json.loads((tmp_path / "eval" / "checkpoint-10-seed0" / "metrics.json").read_text())["summary"]
    assert rows[0]["score"] == run_metrics["score"] and rows[0]["unanswered"] == run_metrics["unanswered"]
    assert rows[0]["ttft_loss"] > 0 and rows[0]["eval_loss"] > 0
    assert png_size((tmp_path / "eval" / "checkpoints.png").read_bytes()) == (1200, 450)
    assert (tmp_path / "eval" / "metrics.csv").read_text().startswith("label,")
    assert len([line for line in result.stdout.splitlines() if line.startswith("checkpoint-")]) == 2


@pytest.mark.slow
def test_variability_gives_each_seed_and_the_spread(tiny_model_dir, tmp_path):
    result = run_cli("variability", "--seeds", "0", "1", "--config", str(tiny_toml(tmp_path, tiny_model_dir)),
                     "--dataset", "arc-agi-1-eval", "--smallest", "1", "--out", str(tmp_path / "var"))
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "var" / "variability.json").read_text())
    assert [run["seed"] for run in data["runs"]] == [0, 1]
    assert [row["statistic"] for row in data["spread"]] == ["mean", "std", "min", "max"]
    assert png_size((tmp_path / "var" / "variability.png").read_bytes()) == (1000, 450)
    assert "mean" in result.stdout and "std" in result.stdout
    task = json.loads((tmp_path / "var" / "seed0" / "challenges.json").read_text()).popitem()[0]
    line = next(line for line in result.stdout.splitlines() if line.startswith("tasks solved by some seed"))
    assert (task in line) == bool(data["solved_by_seeds"][task])  # unsolved tasks are not listed
    seeds = [json.loads((tmp_path / "var" / f"seed{s}" / "tasks" / f"{task}.json").read_text()) for s in (0, 1)]
    assert seeds[0]["ttft"]["losses"] != seeds[1]["ttft"]["losses"]  # other seeds, other draws
    assert run_cli("variability", "--seeds", "3", "--config", "smoke", "--dataset", "arc-agi-1-eval").returncode == 2


def test_degraded_runs_are_counted_and_named_in_comparisons():
    from arc_submit.studies.evaluate import degraded_tasks, degraded_warning, format_table

    clean = {"modes": {"full": 8}, "degraded": {}}
    cut = {"modes": {"full": 5, "cut": 2, "fallback": 1}, "degraded": {"t1": "time budget"}}
    failed = {"modes": {"full": 8}, "degraded": {"t2": "sampling failed: out of memory"}}
    assert [degraded_tasks(s) for s in (clean, cut, failed)] == [0, 3, 1]
    rows = [{"label": "a", "degraded": 0}, {"label": "b", "degraded": 3}]
    assert degraded_warning(rows[:1]) is None
    assert degraded_warning(rows).startswith("warning: 1 of 2 runs degraded tasks") and "b (3)" in degraded_warning(rows)
    assert "degraded" in format_table(rows, "label").splitlines()[0]


def test_evaluations_run_without_a_time_budget_unless_given():
    import argparse

    from arc_submit.commands.studyflags import add_study_arguments, run_flags

    parser = argparse.ArgumentParser()
    add_study_arguments(parser)
    default = run_flags(parser.parse_args(["--dataset", "arc-agi-1-eval"]))
    given = run_flags(parser.parse_args(["--dataset", "arc-agi-1-eval", "--time-budget", "600"]))
    assert default[default.index("--time-budget") + 1] == "0.0" and given[given.index("--time-budget") + 1] == "600.0"


def test_variability_refuses_several_models_instead_of_running_the_last():
    result = run_cli("variability", "--seeds", "0", "1", "--model", "a", "--model", "b", "--dataset", "arc-agi-1-eval")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "variability takes one --model (got 2)" in lines[0]
    assert "evaluate --model A --model B --seeds" in lines[0]
