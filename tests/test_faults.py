"""Failures speak, and never lose work: real processes out of memory, with a code error, killed, hung or
out of disk, then resumed; a work queue that loses no task when a worker dies or hangs; one run per run
dir. Only resource failures degrade a single task (exit status 3, the summary names it); a code error
stops the run in one line (exit status 4); the submission is valid throughout. Faults are injected with
ARC_SUBMIT_FAULTS (arc_submit/faults.py)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from arc_submit.files import write_json
from arc_submit.run.rundir import RunDir
from tests.helpers.cli import run_cli

# Around the model, not in it (tiny model, transformers sampler): the default stack's run covers it (pyproject.toml).
pytestmark = pytest.mark.machinery

TASK_IDS = ["00576224", "4cd1b7b2", "66e6c45b", "be03b35f"]  # the 4 smallest ARC-AGI-1 eval tasks (run order)


@pytest.fixture(scope="module")
def cli(tiny_model_dir, tmp_path_factory):
    """Runs of the CLI on 4 small tasks with the tiny model; an uninterrupted run to compare with."""
    root = tmp_path_factory.mktemp("faults")
    export = run_cli("data", "export", "--dataset", "arc-agi-1-eval", "--smallest", "--limit", "4", "--out", str(root / "data"))
    assert export.returncode == 0
    config = root / "tiny.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n[ttft]\nsteps = 2\nlora_rank = 4\nlora_alpha = 8.0\n'
                      '[sampling]\nbackend = "transformers"\naugmentations = 2\nmax_new_tokens = 16\n'
                      '[run]\nthreads = 1\nworker_timeout = 20.0\n')

    def run(name: str, *extra: str, faults: str = ""):
        result = run_cli("--config", str(config), "--challenges", str(root / "data" / "challenges.json"),
                         "--solutions", str(root / "data" / "solutions.json"), "--run-dir", str(root / name), "--quiet",
                         *extra, env={"ARC_SUBMIT_FAULTS": faults, "ARC_SUBMIT_FAULTS_MARKS": str(root / name / "marks")})
        summary = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
        return result, summary, root / name

    whole, summary, _ = run("whole")
    assert whole.returncode == 0 and summary["modes"] == {"full": 4}, whole.stderr[-2000:]
    return run, root


def same_bytes(root, name: str) -> bool:
    return all((root / name / f).read_bytes() == (root / "whole" / f).read_bytes()
               for f in ("submission.json", "predictions.json"))


def valid(root, run_dir) -> bool:
    check = run_cli("validate", "--challenges", str(root / "data" / "challenges.json"),
                    "--submission", str(run_dir / "submission.json"))
    return check.returncode == 0


@pytest.mark.slow
def test_an_out_of_memory_degrades_only_its_task_and_the_exit_status_says_so(cli):
    run, root = cli
    result, summary, run_dir = run("oom", faults=f"ttft:{TASK_IDS[0]}:oom,sampling:{TASK_IDS[2]}:oom")
    assert result.returncode == 3, result.stderr[-2000:]
    assert set(summary["degraded"]) == {TASK_IDS[0], TASK_IDS[2]} and summary["exit_code"] == 3
    assert "out of memory" in summary["degraded"][TASK_IDS[0]]
    assert "WARNING: 2 tasks degraded" in result.stderr and TASK_IDS[2] in result.stderr
    records = {p.stem: json.loads(p.read_text()) for p in (run_dir / "tasks").glob("*.json")}
    assert records[TASK_IDS[0]]["mode"] == "no_ttft" and records[TASK_IDS[0]]["failed_stages"] == ["ttft"]
    assert all(records[TASK_IDS[0]]["candidates"])  # it still sampled, without TTFT
    assert records[TASK_IDS[1]]["mode"] == "full" and not records[TASK_IDS[1]]["failed_stages"]
    assert records[TASK_IDS[2]]["mode"] == "fallback"
    assert valid(root, run_dir)


@pytest.mark.slow
def test_a_code_error_stops_the_run_in_one_line_with_a_valid_submission(cli):
    run, root = cli
    result, summary, run_dir = run("error", faults=f"ttft:{TASK_IDS[1]}:error")
    assert result.returncode == 4, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and TASK_IDS[1] in errors[0] and "injected code error" in errors[0]
    assert "Traceback" not in result.stderr and "Traceback" in (run_dir / "run.log").read_text()
    assert sorted(p.stem for p in (run_dir / "tasks").glob("*.json")) == [TASK_IDS[0]]  # stopped at the 2nd task
    assert valid(root, run_dir) and summary["exit_code"] == 4


def test_a_malformed_fault_plan_is_named(monkeypatch):
    from arc_submit.faults import planned

    monkeypatch.setenv("ARC_SUBMIT_FAULTS", "ttft:abc:explode")
    with pytest.raises(ValueError, match="'ttft:abc:explode'"):
        planned()


@pytest.mark.slow
def test_a_run_killed_in_the_middle_of_a_task_resumes_to_the_same_bytes(cli):
    run, root = cli
    killed, _, run_dir = run("killed", faults=f"ttft:{TASK_IDS[2]}:kill")
    assert killed.returncode == -9
    assert len(list((run_dir / "tasks").glob("*.json"))) == 2  # two tasks finished before the kill
    assert json.loads((run_dir / "submission.json").read_text()).keys() == set(TASK_IDS)  # still valid
    resumed, summary, _ = run("killed")
    assert resumed.returncode == 0 and summary["ran"] == 2
    assert same_bytes(root, "killed")
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.slow
def test_degraded_tasks_are_redone_on_resume(cli):
    run, root = cli
    first, summary, run_dir = run("redo", faults=f"sampling:{TASK_IDS[1]}:oom")
    assert first.returncode == 3 and list(summary["degraded"]) == [TASK_IDS[1]]
    again, summary, _ = run("redo")
    assert again.returncode == 0 and summary["ran"] == 1 and summary["redone"] == 1 and summary["degraded"] == {}
    assert "1 degraded to redo" in again.stderr
    assert same_bytes(root, "redo")


@pytest.mark.slow
def test_a_killed_worker_loses_no_task_and_the_bytes_stay_the_same(cli):
    run, root = cli
    result, summary, run_dir = run("worker-killed", "--workers", "2", faults=f"task:{TASK_IDS[1]}:kill-once")
    assert result.returncode == 0, result.stderr[-2000:]
    assert summary["retried"] == [TASK_IDS[1]] and summary["failed_by_workers"] == [] and summary["modes"] == {"full": 4}
    assert summary["engine_starts"] == 3  # two workers, one restarted
    assert same_bytes(root, "worker-killed")
    assert "worker" in (run_dir / "run.log").read_text() and "restarting it" in (run_dir / "run.log").read_text()


@pytest.mark.slow
def test_a_hung_worker_is_killed_and_its_task_retried(cli):
    run, root = cli
    result, summary, _ = run("worker-hung", "--workers", "2", faults=f"sampling:{TASK_IDS[0]}:hang-once")
    assert result.returncode == 0, result.stderr[-2000:]
    assert summary["retried"] == [TASK_IDS[0]] and summary["modes"] == {"full": 4}
    assert same_bytes(root, "worker-hung")


@pytest.mark.slow
def test_a_task_whose_worker_dies_twice_is_marked_failed(cli):
    run, _ = cli
    result, summary, run_dir = run("worker-dies", "--workers", "2", faults=f"task:{TASK_IDS[3]}:kill")
    assert result.returncode == 3
    assert summary["failed_by_workers"] == [TASK_IDS[3]] and TASK_IDS[3] in summary["degraded"]
    record = json.loads((run_dir / "tasks" / f"{TASK_IDS[3]}.json").read_text())
    assert record["mode"] == "fallback" and record["failed_stages"] == ["worker"]


@pytest.mark.slow
def test_a_full_disk_keeps_the_last_valid_submission_and_says_so(cli):
    run, root = cli
    first, _, run_dir = run("disk", "--limit", "1")
    assert first.returncode == 0
    before = (run_dir / "submission.json").read_bytes()
    full, _, _ = run("disk", "--limit", "2", faults="write:submission.json:full")
    assert full.returncode == 4 and "Traceback" not in full.stderr
    assert "cannot write" in full.stderr and "submission.json: No space left on device" in full.stderr
    assert (run_dir / "submission.json").read_bytes() == before
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_second_run_on_a_run_dir_in_use_is_refused(cli, tmp_path):
    run, root = cli
    holder = RunDir(root / "locked")
    holder.lock()
    try:
        refused, _, _ = run("locked")
    finally:
        holder.unlock()
    assert refused.returncode == 2 and "another run is using it" in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if line.startswith("error:")]) == 1
    again, summary, _ = run("locked")  # the lock went with its holder
    assert again.returncode == 0 and summary["ran"] == 4


def test_run_log_keeps_every_task_line_and_files_get_the_umask_permissions(cli, tmp_path):
    _, root = cli
    log = (root / "whole" / "run.log").read_text()
    assert all(f"task {task_id}: full" in log for task_id in TASK_IDS)
    mask = os.umask(0)
    os.umask(mask)
    for name in ("submission.json", "predictions.json", "metrics.json", "config.toml"):
        assert stat.S_IMODE((root / "whole" / name).stat().st_mode) == 0o666 & ~mask, name
    write_json(tmp_path / "x.json", {})
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~mask


@pytest.mark.slow
def test_a_broken_engine_ends_its_worker_and_the_task_is_retried_on_a_fresh_one(cli):
    run, root = cli
    result, summary, run_dir = run("engine-broken", "--workers", "2", faults=f"sampling:{TASK_IDS[2]}:engine-once")
    assert result.returncode == 0, result.stderr[-2000:]
    assert summary["retried"] == [TASK_IDS[2]] and summary["modes"] == {"full": 4} and summary["engine_starts"] == 3
    assert same_bytes(root, "engine-broken")
    logs = "".join(path.read_text() for path in (run_dir / "workers").glob("*.log"))
    assert f"task {TASK_IDS[2]}: the engine is not used again" in logs and "this worker exits" in logs


@pytest.mark.slow
def test_a_broken_engine_in_a_run_of_one_process_stops_it_in_one_line(cli):
    run, root = cli
    result, summary, run_dir = run("engine-broken-here", faults=f"sampling:{TASK_IDS[1]}:engine")
    assert result.returncode == 4
    assert "the engine is not used again" in summary["stopped"] and "--workers" in summary["stopped"]
    assert "Traceback" not in result.stderr and valid(root, run_dir)


def test_a_worker_that_dies_at_import_leaves_its_words_in_its_log(tmp_path, monkeypatch):
    """Before its protocol starts a worker's stderr already goes to its log: a crash at import is read
    there, not lost."""
    import os

    from arc_submit.run.executors import LocalExecutor

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os, sys\nsys.stderr.write('crashed before arc_submit\\n')\n"
                                           "sys.stderr.flush()\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    executor = LocalExecutor(tmp_path / "run", 1, 1, 30.0)
    executor.start(0)
    events = []
    for _ in range(100):
        events += executor.events(0.2)
        if events:
            break
    executor.close()
    assert [(event.kind, event.data) for event in events] == [("died", "exit code 3")]
    assert "crashed before arc_submit" in (tmp_path / "run" / "workers" / "worker-1.log").read_text()


@pytest.mark.slow
def test_in_the_scoring_rerun_a_code_error_costs_its_task_and_the_exit_status_says_so(tiny_model_dir, tmp_path):
    """KAGGLE_IS_COMPETITION_RERUN makes run.on_error = degrade whatever the config says: nobody watches."""
    export = run_cli("data", "export", "--dataset", "arc-agi-1-eval", "--smallest", "--limit", "2", "--out",
                     str(tmp_path / "data"))
    assert export.returncode == 0
    config = tmp_path / "tiny.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n[ttft]\nsteps = 2\nlora_rank = 4\nlora_alpha = 8.0\n'
                      '[sampling]\nbackend = "transformers"\naugmentations = 2\nmax_new_tokens = 16\n[run]\nthreads = 1\n')
    first = sorted(json.loads((tmp_path / "data" / "challenges.json").read_text()))[0]
    result = run_cli("--config", str(config), "--challenges", str(tmp_path / "data" / "challenges.json"),
                     "--run-dir", str(tmp_path / "run"), "--quiet",
                     env={"ARC_SUBMIT_FAULTS": f"ttft:{first}:error", "KAGGLE_IS_COMPETITION_RERUN": "1"})
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 3 and summary["exit_code"] == 3, result.stderr[-2000:]
    assert list(summary["degraded"]) == [first] and summary["modes"] == {"no_ttft": 1, "full": 1}
    assert 'on_error = "degrade"' in (tmp_path / "run" / "config.toml").read_text()
    assert "KAGGLE_IS_COMPETITION_RERUN is set: run.on_error = degrade" in (tmp_path / "run" / "run.log").read_text()
