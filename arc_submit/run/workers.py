"""Workers: run the shares of one run in parallel processes on this machine (one per GPU, or a share of
the CPU cores each), merging their records into the parent run dir while they work.

    python -m arc_submit --workers 4 ...
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from arc_submit.files import write_json
from arc_submit.run.shards import merge_run_dirs

MERGE_EVERY_S = 10.0


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
