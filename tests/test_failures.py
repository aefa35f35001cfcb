"""Failures speak: only resource failures (out of memory, a diverging loss) degrade a single task, and
then the summary names it and the exit status is 3; a configuration or code error stops the run at the
first task with one clear line and exit status 4; either way the submission is valid. Faults are injected
with ARC_SUBMIT_FAULTS (arc_submit/faults.py) into real runs of the CLI."""

from __future__ import annotations

import json

import pytest

from arc_submit.data.tasks import load_tasks
from arc_submit.faults import planned
from tests.conftest import run_cli

TASK_IDS = ["00576224", "66e6c45b", "be03b35f"]  # the 3 smallest ARC-AGI-1 eval tasks, in run order


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("failures")
    export = run_cli("data", "export", "--dataset", "arc-agi-1-eval", "--smallest", "--limit", "3", "--out", str(root / "data"))
    assert export.returncode == 0
    config = root / "tiny.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n[ttft]\nsteps = 2\nlora_rank = 4\nlora_alpha = 8.0\n'
                      '[sampling]\nbackend = "transformers"\naugmentations = 2\nmax_new_tokens = 16\n[run]\nthreads = 1\n')

    def run(name: str, faults: str = "", *extra: str):
        result = run_cli("--config", str(config), "--challenges", str(root / "data" / "challenges.json"),
                         "--run-dir", str(root / name), "--quiet", *extra, env={"ARC_SUBMIT_FAULTS": faults})
        return result, root / name

    return run, root


def valid(root, run_dir) -> bool:
    check = run_cli("validate", "--challenges", str(root / "data" / "challenges.json"),
                    "--submission", str(run_dir / "submission.json"))
    return check.returncode == 0


def test_an_out_of_memory_degrades_only_its_task_and_the_exit_status_says_so(tiny_run):
    run, root = tiny_run
    result, run_dir = run("oom", f"ttft:{TASK_IDS[0]}:oom,sampling:{TASK_IDS[2]}:oom")
    assert result.returncode == 3, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary["degraded"]) == {TASK_IDS[0], TASK_IDS[2]} and summary["exit_code"] == 3
    assert "out of memory" in summary["degraded"][TASK_IDS[0]]
    assert "WARNING: 2 tasks degraded" in result.stderr and TASK_IDS[2] in result.stderr
    records = {p.stem: json.loads(p.read_text()) for p in (run_dir / "tasks").glob("*.json")}
    assert records[TASK_IDS[0]]["mode"] == "no_ttft" and records[TASK_IDS[0]]["failed_stages"] == ["ttft"]
    assert all(records[TASK_IDS[0]]["candidates"])  # it still sampled, without TTFT
    assert records[TASK_IDS[1]]["mode"] == "full" and not records[TASK_IDS[1]]["failed_stages"]
    assert records[TASK_IDS[2]]["mode"] == "fallback"
    assert valid(root, run_dir)


def test_a_code_error_stops_the_run_in_one_line_with_a_valid_submission(tiny_run):
    run, root = tiny_run
    result, run_dir = run("error", f"ttft:{TASK_IDS[1]}:error")
    assert result.returncode == 4, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and TASK_IDS[1] in errors[0] and "injected code error" in errors[0]
    assert "Traceback" not in result.stderr and "Traceback" in (run_dir / "run.log").read_text()
    assert sorted(p.stem for p in (run_dir / "tasks").glob("*.json")) == [TASK_IDS[0]]  # stopped at the 2nd task
    assert valid(root, run_dir)
    assert json.loads(result.stdout.strip().splitlines()[-1])["exit_code"] == 4


def test_a_malformed_fault_plan_is_named(monkeypatch):
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", "ttft:abc:explode")
    with pytest.raises(ValueError, match="'ttft:abc:explode'"):
        planned()


def test_the_challenges_used_are_the_three_smallest(tiny_run):
    _, root = tiny_run
    assert [t.task_id for t in load_tasks(root / "data" / "challenges.json")] == TASK_IDS
