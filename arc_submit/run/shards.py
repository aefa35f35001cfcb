"""Shards: split a run's tasks deterministically into shares (one per machine or Kaggle kernel), and
merge the shares' run dirs into one run dir and one submission.

    python -m arc_submit --shard 1/2 --run-dir runs/a ...   # and --shard 2/2 --run-dir runs/b elsewhere
    python -m arc_submit merge runs/a runs/b --run-dir runs/all --output submission.json

Imports, inside run/: rundir only.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from arc_submit.data.tasks import Task, attach_solutions, parse_challenges
from arc_submit.errors import UserError
from arc_submit.files import read_json
from arc_submit.run.rundir import RunDir, config_differences, outcome

SHARD = re.compile(r"(\d+)/(\d+)")


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
    """Join the finished task records of every source run dir into `target` and rebuild its outputs
    (submission with fallbacks where no shard has finished a task, predictions, metrics). The sources must
    be shards of one run: the same tasks and the same settings (model, seed, every setting but those a
    resumed run may change); for a task two shards both ran, a complete record wins over a degraded one,
    then the newer one."""
    first = sources[0]
    missing = [source for source in sources if not (source / "challenges.json").is_file()
               or not (source / "config.toml").is_file()]
    if missing:
        what = "challenges.json" if not (missing[0] / "challenges.json").is_file() else "config.toml"
        raise UserError(f"{missing[0]}: not a run dir of arc-submit ({what} is missing)")
    challenges = read_json(first / "challenges.json")
    settings = _settings(first)
    others = [*sources[1:], *([target] if (target / "challenges.json").is_file() else [])]  # a target's records count too
    for source in others:
        if read_json(source / "challenges.json") != challenges:
            raise UserError(f"{source}: ran other tasks than {first}; only shards of one run merge")
        differences = config_differences(settings, _settings(source))
        if differences:
            raise UserError(f"{source}: ran with other settings than {first} ({'; '.join(differences[:3])}); only "
                            "shards of one run merge")
    tasks = parse_challenges(challenges, str(first / "challenges.json"))
    if (first / "solutions.json").is_file():
        tasks = attach_solutions(tasks, read_json(first / "solutions.json"), str(first / "solutions.json"))
    run_dir = RunDir(target)
    run_dir.tasks_dir.mkdir(parents=True, exist_ok=True)
    if first.resolve() != target.resolve():
        for name in ("config.toml", "challenges.json", "solutions.json"):
            if (first / name).is_file():
                shutil.copy2(first / name, target / name)
    for task in tasks:
        best = _best_record(task, [RunDir(source) for source in sources] + [run_dir])
        if best is not None and best.resolve() != run_dir.record_path(task.task_id).resolve():
            shutil.copy2(best, run_dir.record_path(task.task_id))
    records = run_dir.finished_records(tasks)
    metrics = run_dir.write_outputs(tasks, records, output)
    return {"tasks": len(tasks), "merged": len(records), **outcome(list(records.values())),
            **({"metrics": metrics["summary"]} if metrics else {})}


def _settings(run_dir: Path) -> dict:
    import tomllib

    try:
        return tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{run_dir / 'config.toml'}: not valid TOML: {error}") from None


def _best_record(task: Task, run_dirs: list[RunDir]) -> Path | None:
    """The record file of the task to keep: one that can be used, complete before degraded, then the newest."""
    found = []
    for run_dir in run_dirs:
        record = run_dir.finished(task)
        if record is not None:
            path = run_dir.record_path(task.task_id)
            found.append((not record.degraded, path.stat().st_mtime, path))
    return max(found)[2] if found else None
