"""Whole runs of arc-submit commands (a pipeline run per checkpoint or seed, a training per setting), each
in a fresh process: one after another here (`local`), or side by side as Ray tasks, one per GPU or
share of CPU cores, so that ten checkpoints run on ten GPUs (`ray`; the folders must be on storage every
machine of the cluster sees).

    summaries = fan_out([["run", "--seed", "0", ...], ["run", "--seed", "1", ...]], executor="ray")
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

DEGRADED = 3  # the run command's exit status when some tasks degraded: a valid result


def call(command: list[str], cwd: str | None = None, threads: int = 0) -> dict:
    """`python -m arc_submit COMMAND ...` in a fresh process (its memory given back), on `threads` CPU
    threads (0: all); its JSON summary. RuntimeError when it fails."""
    print("$", "python -m arc_submit", " ".join(command), file=sys.stderr, flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    result = subprocess.run([sys.executable, "-m", "arc_submit", *command], stdout=subprocess.PIPE, text=True, cwd=cwd,
                            env=env)
    lines = result.stdout.strip().splitlines()
    if result.returncode not in (0, DEGRADED) or not lines:
        where = command[command.index("--out") + 1] if "--out" in command else (
            command[command.index("--run-dir") + 1] if "--run-dir" in command else "")
        raise RuntimeError(f"`{command[0]}` {where} exited with code {result.returncode}")
    return json.loads(lines[-1])


def fan_out(commands: list[list[str]], executor: str = "local", ray_address: str | None = None,
            threads: int = 0, workers: int = 1) -> list[dict | RuntimeError]:
    """Each command's summary, or the RuntimeError it failed with, in the order given. Locally, `workers`
    commands run side by side, each on its share of the CPU cores."""
    if executor != "ray":
        def one(command: list[str]) -> dict | RuntimeError:
            try:
                return call(command, threads=threads or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0))
            except RuntimeError as error:
                return error

        if workers <= 1:
            return [one(command) for command in commands]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, commands))
    from arc_submit.run.executors import actor_resources, connect

    ray = connect(ray_address)
    remote = ray.remote(call).options(max_retries=1, **actor_resources(ray, len(commands), threads))
    references = [remote.remote(command, os.getcwd()) for command in commands]
    results = []
    for reference in references:
        try:
            results.append(ray.get(reference))
        except ray.exceptions.RayTaskError as error:
            results.append(RuntimeError(str(error.cause) if error.cause else str(error)))
    return results
