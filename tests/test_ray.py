"""The work queue and the studies on a real, local Ray instance the tests start themselves
(`ray.init(num_cpus=2)`, no dashboard): the same bytes as local workers, an actor killed in the middle of
a run losing no task, and variability over two seeds equal to the local result."""

from __future__ import annotations

import json

import pytest

from arc_submit.config import load_config
from arc_submit.data.tasks import load_dataset, smallest

ray = pytest.importorskip("ray")
TASKS = smallest(load_dataset("arc-agi-1-eval"), 3)
# Around the model, not in it (tiny model, transformers sampler): the default stack's run covers it (pyproject.toml).
pytestmark = pytest.mark.machinery


@pytest.fixture
def local_ray():
    """Start a local Ray instance with the given extra environment for its workers; shut it down after."""
    from arc_submit.run.executors import passed_environment

    def start(**env: str) -> None:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {**passed_environment(), **env}})

    yield start
    ray.shutdown()


def tiny(model_dir, *overrides):
    return load_config(None, [f'model.name="{model_dir}"', 'sampling.backend="transformers"', "ttft.steps=2",
                              "ttft.lora_rank=4", "ttft.lora_alpha=8.0", "sampling.augmentations=2",
                              "sampling.max_new_tokens=16", "run.threads=1", *overrides])


def run(config, run_dir, **options) -> dict:
    import torch

    from arc_submit.run.pipeline import run_pipeline

    threads = torch.get_num_threads()
    try:
        return run_pipeline(config, TASKS, run_dir, None, progress=False, **options)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_seeded_run_through_ray_gives_the_local_bytes_and_survives_a_killed_actor(tiny_model_dir, tmp_path,
                                                                                       local_ray):
    local_ray(ARC_SUBMIT_FAULTS=f"task:{TASKS[1].task_id}:kill-once", ARC_SUBMIT_FAULTS_MARKS=str(tmp_path / "marks"))
    config = tiny(tiny_model_dir)
    run(config, tmp_path / "local")
    summary = run(config, tmp_path / "ray", workers=2, executor="ray")
    assert summary["modes"] == {"full": 3} and summary["failed_by_workers"] == []
    assert summary["retried"] == [TASKS[1].task_id]  # its actor died under it: Ray restarted it and ran it again
    assert (tmp_path / "marks").is_dir()
    for name in ("submission.json", "predictions.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "ray" / "workers").iterdir()) == ["ray-worker-1.log", "ray-worker-2.log"]
    said = [next(line for line in (tmp_path / "ray" / "workers" / f"ray-worker-{n}.log").read_text().splitlines()
                 if "vLLM ports from" in line).split(": ", 1)[1] for n in (1, 2)]
    assert said[0] != said[1] and all("worker-" in line for line in said)  # actors on one node: ports and caches apart


@pytest.mark.slow
def test_variability_over_two_seeds_through_ray_equals_the_local_result(tiny_model_dir, tmp_path, local_ray):
    from arc_submit.cli import main

    local_ray()
    config = tmp_path / "tiny.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n[ttft]\nsteps = 2\nlora_rank = 4\nlora_alpha = 8.0\n'
                      '[sampling]\nbackend = "transformers"\naugmentations = 2\nmax_new_tokens = 16\n[run]\nthreads = 1\n')
    flags = ["variability", "--seeds", "0", "1", "--config", str(config), "--dataset", "arc-agi-1-eval", "--smallest", "2"]
    assert main([*flags, "--out", str(tmp_path / "local")]) == 0
    assert main([*flags, "--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    results = [json.loads((tmp_path / name / "variability.json").read_text()) for name in ("local", "ray")]
    keep = lambda rows: [{k: v for k, v in row.items() if k != "run_dir"} for row in rows]  # noqa: E731
    assert keep(results[0]["runs"]) == keep(results[1]["runs"]) and results[0]["spread"] == results[1]["spread"]
    for seed in (0, 1):
        assert ((tmp_path / "ray" / f"seed{seed}" / "submission.json").read_bytes()
                == (tmp_path / "local" / f"seed{seed}" / "submission.json").read_bytes())


def test_without_ray_installed_the_executor_says_how_to_install_it(monkeypatch):
    import sys

    from arc_submit.errors import UserError
    from arc_submit.run.executors import connect

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(UserError, match=r"pip install 'arc-submit\[ray\]'"):
        connect()


def test_heartbeats_are_timed_by_the_drivers_clock(monkeypatch):
    """The board counts beats; the driver stamps a changed count with its own clock, so an actor machine
    whose clock is hours off neither looks hung nor hides a hang."""
    from arc_submit.run import executors
    from arc_submit.run.executors import RayExecutor, _Board

    board, killed, now = _Board(), [], [100.0]

    class FakeRay:
        def get(self, value):
            return value

        def kill(self, actor, no_restart):
            killed.append(actor)

    class Remote:
        def remote(self):
            return board.last()

    executor = object.__new__(RayExecutor)
    executor.ray, executor.timeout, executor.actors = FakeRay(), 10.0, {0: "actor-0"}
    executor.board = type("B", (), {"last": Remote()})()
    executor.busy_since, executor.counted = {0: 100.0}, {}
    monkeypatch.setattr(executors.time, "monotonic", lambda: now[0])
    for step in range(5):  # a long healthy stage: a beat every 8 s, 40 s in all
        now[0] += 8.0
        board.beat(0)
        executor._watch([])
    assert killed == []
    now[0] += 11.0  # then silence past the timeout
    executor._watch([])
    assert killed == ["actor-0"]
