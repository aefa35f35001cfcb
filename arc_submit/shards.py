"""Shards and workers: split a run's tasks deterministically, run the shares in parallel processes
(one per GPU on Kaggle), and merge their run dirs into one submission.

    python -m arc_submit --shard 1/2 --run-dir runs/a ...   # and --shard 2/2 --run-dir runs/b elsewhere
    python -m arc_submit merge runs/a runs/b --run-dir runs/all --output submission.json
    python -m arc_submit --workers 4 ...                    # the same, in one command, on this machine
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from arc_submit.errors import UserError
from arc_submit.files import read_json, write_json
from arc_submit.tasks import Task

SHARD = re.compile(r"(\d+)/(\d+)")
MERGE_EVERY_S = 10.0


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' (1 <= i <= n) -> (i, n)."""
    match = SHARD.fullmatch(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UserError(f"--shard {text}: expected i/n with 1 <= i <= n, e.g. --shard 1/4")
    return int(match[1]), int(match[2])


def assign(tasks: list[Task], shards: int) -> list[list[Task]]:
    """Tasks dealt to `shards` shares of similar size: largest first, each to the lightest share (ties to
    the lowest index). Depends only on the set of tasks, so every process computes the same split."""
    loads, shares = [0] * shards, [[] for _ in range(shards)]
    for task in sorted(tasks, key=lambda t: (-t.cells(), t.task_id)):
        lightest = min(range(shards), key=lambda i: (loads[i], i))
        shares[lightest].append(task.task_id)
        loads[lightest] += task.cells()
    return [[task for task in tasks if task.task_id in set(share)] for share in shares]


def shard_tasks(tasks: list[Task], shard: tuple[int, int] | None) -> list[Task]:
    return tasks if shard is None else assign(tasks, shard[1])[shard[0] - 1]


# ----------------------------------------------------------------------------- merging run dirs


def merge_run_dirs(sources: list[Path], target: Path, output: Path | None = None) -> dict:
    """Copy the finished task records of every source run dir into `target` and rebuild its outputs
    (submission with fallbacks where no shard has finished a task, predictions, metrics)."""
    from arc_submit.rundir import RunDir, outcome
    from arc_submit.tasks import attach_solutions, parse_challenges

    first = sources[0]
    missing = [source for source in sources if not (source / "challenges.json").is_file()]
    if missing:
        raise UserError(f"{missing[0]}: not a run dir of arc-submit (challenges.json is missing)")
    challenges = read_json(first / "challenges.json")
    for source in sources[1:]:
        if read_json(source / "challenges.json") != challenges:
            raise UserError(f"{source}: ran other tasks than {first}; only shards of one run merge")
    tasks = parse_challenges(challenges, str(first / "challenges.json"))
    if (first / "solutions.json").is_file():
        tasks = attach_solutions(tasks, read_json(first / "solutions.json"), str(first / "solutions.json"))
    run_dir = RunDir(target)
    run_dir.tasks_dir.mkdir(parents=True, exist_ok=True)
    if first.resolve() != target.resolve():
        for name in ("config.toml", "challenges.json", "solutions.json"):
            if (first / name).is_file():
                shutil.copy2(first / name, target / name)
    for source in sources:
        if source.resolve() == target.resolve():
            continue
        for record in sorted((source / "tasks").glob("*.json")):
            copy = run_dir.tasks_dir / record.name
            if not copy.is_file() or copy.stat().st_mtime < record.stat().st_mtime:  # new or redone only
                shutil.copy2(record, copy)
    records = {t.task_id: r for t in tasks if (r := run_dir.finished(t)) is not None}
    metrics = run_dir.write_outputs(tasks, records, output)
    return {"tasks": len(tasks), "merged": len(records), **outcome(list(records.values())),
            **({"metrics": metrics["summary"]} if metrics else {})}


# ----------------------------------------------------------------------------- workers


def worker_environment(index: int, workers: int, threads: int) -> dict[str, str]:
    """One GPU per worker where there are GPUs; otherwise a share of the CPU cores."""
    env = dict(os.environ)
    gpus = _gpu_count()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    else:
        cores = os.cpu_count() or 1
        per_worker = threads or max(1, cores // workers)
        first = (index * per_worker) % cores
        env["OMP_NUM_THREADS"] = str(per_worker)
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str((first + k) % cores) for k in range(per_worker))
    return env


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([device for device in visible.split(",") if device.strip()])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return len([line for line in out.splitlines() if line.startswith("GPU ")])


def run_workers(config_path: Path, run_dir: Path, workers: int, threads: int, output: Path | None,
                quiet: bool) -> dict:
    """Run `workers` processes, shard i/workers each, merging their records into `run_dir` as they
    finish tasks, so that the submission there is rewritten while they work."""
    flags = ["--config", str(config_path), "--challenges", str(run_dir / "challenges.json")]
    if (run_dir / "solutions.json").is_file():
        flags += ["--solutions", str(run_dir / "solutions.json")]
    worker_dirs = [run_dir / f"worker-{i}" for i in range(1, workers + 1)]
    processes = []
    for index, worker_dir in enumerate(worker_dirs):
        command = [sys.executable, "-m", "arc_submit", "run", *flags, "--shard", f"{index + 1}/{workers}",
                   "--run-dir", str(worker_dir), *(["--quiet"] if quiet else [])]
        processes.append(subprocess.Popen(command, env=worker_environment(index, workers, threads),
                                          stdout=subprocess.DEVNULL))
    while any(process.poll() is None for process in processes):
        time.sleep(MERGE_EVERY_S)
        merge_run_dirs([run_dir, *[d for d in worker_dirs if (d / "challenges.json").is_file()]], run_dir, output)
    summary = merge_run_dirs([run_dir, *[d for d in worker_dirs if (d / "challenges.json").is_file()]], run_dir, output)
    summary["worker_exit_codes"] = [process.returncode for process in processes]
    write_json(run_dir / "workers.json", summary, indent=1)
    return summary
