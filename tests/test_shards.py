"""Shards and workers: a deterministic balanced split, shards that merge to the unsharded result, and
the same submission bytes for 1 or 2 worker processes (tiny model, transformers sampler)."""

from __future__ import annotations

import json
import re

import pytest

from arc_submit.data.tasks import load_dataset
from arc_submit.errors import UserError
from arc_submit.run.shards import assign, parse_shard
from tests.helpers.cli import run_cli


def test_assignment_is_a_balanced_deterministic_partition():
    tasks = load_dataset("arc-agi-1-eval")[:60]
    shares = assign(tasks, 4)
    ids = [t.task_id for share in shares for t in share]
    assert sorted(ids) == sorted(t.task_id for t in tasks)
    loads = [sum(t.cells() for t in share) for share in shares]
    assert max(loads) - min(loads) <= max(t.cells() for t in tasks)
    assert assign(list(reversed(tasks)), 4)[0] == [t for t in reversed(tasks) if t in shares[0]]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", "2"])
def test_bad_shards_are_refused(text):
    with pytest.raises(UserError, match="--shard"):
        parse_shard(text)


def tiny_config(tmp_path, model_dir):
    path = tmp_path / "tiny.toml"
    path.write_text(f'[model]\nname = "{model_dir}"\n[ttft]\nsteps = 2\nlora_rank = 4\nlora_alpha = 8.0\n'
                    '[sampling]\nbackend = "transformers"\naugmentations = 2\nmax_new_tokens = 16\n'
                    '[run]\nthreads = 1\n')
    return path


@pytest.fixture
def export(tmp_path):
    result = run_cli("data", "export", "--dataset", "arc-agi-1-eval", "--smallest", "--limit", "3",
                     "--out", str(tmp_path / "data"))
    assert result.returncode == 0
    return ["--challenges", str(tmp_path / "data" / "challenges.json"),
            "--solutions", str(tmp_path / "data" / "solutions.json")]


def run_ok(*args):
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.machinery
def test_shards_merge_to_the_unsharded_result(tiny_model_dir, tmp_path, export):
    config = ["--config", str(tiny_config(tmp_path, tiny_model_dir)), "--quiet", *export]
    run_ok(*config, "--run-dir", str(tmp_path / "whole"))
    first = run_ok(*config, "--shard", "1/2", "--run-dir", str(tmp_path / "s1"))
    second = run_ok(*config, "--shard", "2/2", "--run-dir", str(tmp_path / "s2"))
    assert first["ran"] + second["ran"] == 3 and first["ran"] and second["ran"]
    merged = run_ok("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--run-dir", str(tmp_path / "merged"))
    assert merged["merged"] == 3
    for name in ("submission.json", "predictions.json"):
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    check = run_cli("validate", "--challenges", export[1], "--submission", str(tmp_path / "merged" / "submission.json"))
    assert check.returncode == 0


@pytest.mark.slow
@pytest.mark.machinery
def test_one_or_two_workers_give_the_same_bytes(tiny_model_dir, tmp_path, export):
    config = ["--config", str(tiny_config(tmp_path, tiny_model_dir)), "--quiet", *export]
    run_ok(*config, "--run-dir", str(tmp_path / "one"))
    summary = run_ok(*config, "--workers", "2", "--run-dir", str(tmp_path / "two"),
                     "--output", str(tmp_path / "out.json"))
    assert summary["workers"] == 2 and summary["modes"] == {"full": 3} and summary["retried"] == []
    assert summary["engine_starts"] == 2
    assert (tmp_path / "two" / "submission.json").read_bytes() == (tmp_path / "one" / "submission.json").read_bytes()
    assert (tmp_path / "out.json").read_bytes() == (tmp_path / "one" / "submission.json").read_bytes()
    logs = {p.name: p.read_text() for p in (tmp_path / "two" / "workers").iterdir()}
    assert set(logs) == {"worker-1.log", "worker-2.log"} and all("worker started" in text for text in logs.values())
    # Every task ran exactly once, on one worker or the other. Which worker gets how many is timing (a task
    # takes 0.2-0.6 s, a worker's start ~6 s): a worker that starts a second later may get none.
    ran = sorted(m for text in logs.values() for m in re.findall(r" INFO task (\w+): full", text))
    assert ran == sorted(json.loads((tmp_path / "data" / "challenges.json").read_text()))


def test_merge_refuses_what_is_not_a_run_dir(tmp_path):
    result = run_cli("merge", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "no such run dir" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_cli("merge", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "not a run dir" in result.stderr


@pytest.mark.slow
def test_bench_measures_every_part_with_tiny_settings(tiny_model_dir, tmp_path):
    result = run_cli("bench", "--config", str(tiny_config(tmp_path, tiny_model_dir)), "--steps", "3", "--new-tokens",
                     "4", "--augmentations", "1", "--pipeline-tasks", "2", "--rule-tasks", "2", "--out", str(tmp_path / "bench"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert "warning" not in result.stderr.lower(), result.stderr  # the libraries' warnings go to a file
    assert summary["library_warnings"] >= 0
    assert summary["sampling"]["ratio"] > 0 and summary["ttft"]["ratio"] > 0 and summary["ttft"]["same_tokens"]
    assert summary["sampling"]["prefill_ratio"] > 0 and "decode_ratio" in summary["sampling"]  # the parts apart
    assert summary["dfs"]["ratio"] > 0 and summary["dfs"]["prompts"] == 4
    scoring = summary["scoring"]  # the sampler's scoring and the model's prefix-shared scoring agree
    assert scoring["scores"] > 0 and scoring["largest_difference"] < 1e-3 and scoring["model_ratio"] > 0
    pipeline = summary["pipeline"]
    assert pipeline["tasks"] == 2 and pipeline["engine_starts"] == 1 and 0 <= pipeline["per_task_overhead"] < 1
    rules = summary["rules"]  # at the config's own 2 TTFT steps, not bench's --steps
    assert rules["tasks"] == 2 and rules["ttft_steps"] == [2] and set(rules["last_loss"]) == {"flip", "recolour"}
    assert set(rules["solved"]) <= {"flip", "recolour"} and rules["score"] == len(rules["solved"]) / 2


@pytest.mark.slow
def test_plan_says_whether_a_run_fits(tiny_model_dir, tmp_path):
    config = str(tiny_config(tmp_path, tiny_model_dir))
    rates = ["--train-tokens-per-s", "1000", "--gen-tokens-per-s", "500"]
    small = run_ok("plan", "--config", config, "--dataset", "arc-agi-1-eval", "--smallest", "3", *rates,
                   "--time-budget", "100000")
    assert small["tasks"] == 3 and small["fits"] and small["expected_s"] > 120
    tight = run_ok("plan", "--config", config, "--dataset", "arc-agi-1-eval", "--smallest", "3", *rates,
                   "--time-budget", "60")
    assert not tight["fits"]
    two = run_ok("plan", "--config", config, "--dataset", "arc-agi-1-eval", "--smallest", "3", *rates, "--workers", "2")
    assert two["expected_s"] < small["expected_s"]
    assert run_cli("plan", "--config", config, "--dataset", "arc-agi-1-eval").returncode == 2  # no rates given


def test_merge_refuses_shards_of_other_runs_and_keeps_complete_records_over_degraded(tiny_model_dir, tmp_path):
    import os
    import shutil

    from arc_submit.run.shards import merge_run_dirs
    from tests.helpers.runs import TASKS, run

    run(tiny_model_dir, tmp_path / "a")
    run(tiny_model_dir, tmp_path / "seed1", seed=1)
    with pytest.raises(UserError, match=r"seed1: ran with other settings than .*run\.seed: 0 -> 1"):
        merge_run_dirs([tmp_path / "a", tmp_path / "seed1"], tmp_path / "merged")
    run(tiny_model_dir, tmp_path / "steps", "ttft.steps=3")
    with pytest.raises(UserError, match=r"ttft\.steps: 2 -> 3"):
        merge_run_dirs([tmp_path / "a", tmp_path / "steps"], tmp_path / "merged")
    # a shard that redid a task and degraded it (newer) does not replace the complete record
    shutil.copytree(tmp_path / "a", tmp_path / "redone")
    path = tmp_path / "redone" / "tasks" / f"{TASKS[0].task_id}.json"
    record = json.loads(path.read_text())
    record.update(mode="fallback", failed_stages=["sampling"], reasons=["sampling failed: RuntimeError: out of memory"])
    path.write_text(json.dumps(record))
    os.utime(path, (path.stat().st_atime + 60, path.stat().st_mtime + 60))
    for order in ([tmp_path / "a", tmp_path / "redone"], [tmp_path / "redone", tmp_path / "a"]):
        shutil.rmtree(tmp_path / "merged", ignore_errors=True)
        summary = merge_run_dirs(order, tmp_path / "merged")
        assert summary["degraded"] == {} and summary["modes"] == {"full": len(TASKS)}


@pytest.mark.slow
@pytest.mark.machinery
def test_scope_all_trains_once_for_every_worker_and_a_resume_trains_no_more(tiny_model_dir, tmp_path, export):
    config = ["--config", str(tiny_config(tmp_path, tiny_model_dir)), "--quiet", "--set", 'ttft.scope="all"',
              "--set", "ttft.steps=3", *export]
    run_ok(*config, "--run-dir", str(tmp_path / "one"))
    summary = run_ok(*config, "--workers", "2", "--run-dir", str(tmp_path / "two"))
    assert summary["modes"] == {"full": 3}
    assert (tmp_path / "two" / "submission.json").read_bytes() == (tmp_path / "one" / "submission.json").read_bytes()
    logs = [(tmp_path / "two" / "workers" / f"worker-{n}.log").read_text() for n in (1, 2)]
    assert "serving the shared adapter trained before" not in logs[0]  # the first worker trained it ...
    assert "serving the shared adapter trained before" in logs[1]  # ... the second loaded it
    assert json.loads((tmp_path / "two" / "shared-ttft.json").read_text())["steps"] == 3
    assert sorted(json.loads((tmp_path / "two" / "shared-tasks.json").read_text())) == sorted(
        json.loads((tmp_path / "data" / "challenges.json").read_text()))
    (tmp_path / "one" / "tasks" / sorted(json.loads((tmp_path / "data" / "challenges.json").read_text()))[0]
     ).with_suffix(".json").unlink()  # one task to redo: the resumed run serves the saved adapter
    again = run_cli(*config, "--run-dir", str(tmp_path / "one"))
    assert again.returncode == 0 and "serving the shared adapter trained before" in (tmp_path / "one" / "run.log").read_text()
    assert (tmp_path / "one" / "submission.json").read_bytes() == (tmp_path / "two" / "submission.json").read_bytes()
