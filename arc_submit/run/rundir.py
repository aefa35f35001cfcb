"""The run dir: resolved `config.toml`, one record per finished task (`tasks/<task_id>.json`), and the
outputs rebuilt from the records after every task: `predictions.json`, `submission.json` (always valid,
fallback attempts where a task has no answer yet) and `metrics.json` when solutions are known.

A rerun with the same run dir skips the tasks whose record matches the task's content; a record that
cannot be read, or was written by another schema version, is redone with a one-line warning.

Imports, inside run/: record only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from arc_submit.config import Config, to_toml
from arc_submit.data.metrics import research_metrics, score
from arc_submit.data.submission import build, fallback_attempts, inputs_per_task, submission_problems
from arc_submit.data.tasks import Task, grid_key
from arc_submit.errors import UserError
from arc_submit.files import read_json, write_json, write_text
from arc_submit.run.record import RecordError, TaskRecord

log = logging.getLogger("arc_submit")

# Settings that may change between a run and its resumption without invalidating finished tasks.
RESUMABLE = {("run", "time_budget"), ("run", "limit"), ("run", "threads"), ("run", "reserve_fraction"),
             ("run", "worker_timeout"), ("run", "on_error")}


def task_hash(task: Task) -> str:
    """A fingerprint of what the model sees of a task (its solutions excluded)."""
    return hashlib.sha256(json.dumps(task.to_challenge(), sort_keys=True).encode()).hexdigest()[:16]


def outcome(records: list[TaskRecord]) -> dict:
    """How the tasks of these records ended: tasks per mode, the tasks where a stage failed, the degraded
    tasks with their reasons, the answers that did not parse, by kind, and the test inputs (by task) for which
    no answer parsed at all."""
    modes = [record.mode for record in records]
    unparsed: dict[str, int] = {}
    for record in records:
        for kind, count in record.unparsed.items():
            unparsed[kind] = unparsed.get(kind, 0) + count
    return {"modes": {mode: modes.count(mode) for mode in sorted(set(modes))},
            "failed_tasks": [record.task_id for record in records if record.failed_stages],
            "degraded": {record.task_id: "; ".join(record.reasons) for record in records if record.degraded},
            "unparsed": dict(sorted(unparsed.items())),
            "no_answer": {record.task_id: record.unanswered for record in records if record.unanswered}}


def work_seconds(record: TaskRecord) -> tuple[float, float]:
    """(seconds in optimizer steps, seconds generating) of a task record."""
    compute = record.ttft.compute_seconds if record.ttft else 0.0
    return compute, record.timings.get("generate_s", 0.0)


def config_differences(old: dict, new: dict, path: tuple = (), ignore: tuple[str, ...] = ("train",)) -> list[str]:
    """The settings that differ between two resolved configs, except those a resumed run may change
    (RESUMABLE) and whole sections in `ignore` (a run does not use [train])."""
    differences = []
    for key in sorted(set(old) | set(new)):
        where = (*path, key)
        a, b = old.get(key), new.get(key)
        if where[0] in ignore:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            differences += config_differences(a, b, where, ignore)
        elif a != b and where not in RESUMABLE:
            differences.append(f"{'.'.join(where)}: {a!r} -> {b!r}")
    return differences


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tasks_dir = self.path / "tasks"
        self._lock = None

    def lock(self) -> None:
        """Hold the run dir for this process: a second run on it is refused in one line. The lock is the
        operating system's (flock), so a run that was killed leaves nothing that blocks the next one."""
        import fcntl
        import os
        import time

        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"--run-dir {self.path}: another run is using it ({holder}); wait for it to end or "
                            "choose another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def prepare(self, config: Config) -> None:
        """Create the run dir, or check that an existing one was made with the same settings."""
        import tomllib

        saved = self.path / "config.toml"
        if saved.is_file():
            old = tomllib.loads(saved.read_text(encoding="utf-8"))
            differences = config_differences(old, config.to_dict())
            if differences:
                raise UserError(
                    f"--run-dir {self.path}: holds a run with other settings ({'; '.join(differences[:3])}); "
                    "resume it with the same settings or choose a new --run-dir"
                )
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        write_text(saved, to_toml(config))

    def save_tasks(self, tasks: list[Task]) -> None:
        """The run's tasks in Kaggle layout, so that reports can draw them later."""
        from arc_submit.data.tasks import kaggle_layout

        challenges, solutions = kaggle_layout(tasks)
        write_json(self.path / "challenges.json", challenges)
        if solutions:
            write_json(self.path / "solutions.json", solutions)

    def record_path(self, task_id: str) -> Path:
        return self.tasks_dir / f"{task_id}.json"

    def read_record(self, task_id: str) -> TaskRecord:
        """The record in tasks/<task_id>.json; UserError or RecordError when it cannot be trusted."""
        return TaskRecord.from_dict(read_json(self.record_path(task_id)))

    def finished(self, task: Task) -> TaskRecord | None:
        """The task's record when it finished with the same content (complete or degraded), else None; a
        record that cannot be trusted is redone, with a warning that says why."""
        path = self.record_path(task.task_id)
        if not path.is_file():
            return None
        try:
            record = self.read_record(task.task_id)
        except (UserError, RecordError) as error:
            log.warning("task %s: redoing it: its record %s cannot be used: %s", task.task_id, path, error)
            return None
        if record.task_id != task.task_id or record.task_hash != task_hash(task) or len(record.attempts) != len(task.test):
            log.warning("task %s: redoing it: its record %s was made for other task content", task.task_id, path)
            return None
        return record

    def records(self) -> dict[str, TaskRecord]:
        """Every record in tasks/ that can be read, by task id (for studies of a run); the others are
        named in a warning."""
        found = {}
        for path in sorted(self.tasks_dir.glob("*.json")):
            try:
                found[path.stem] = self.read_record(path.stem)
            except (UserError, RecordError) as error:
                log.warning("%s: skipped: %s", path, error)
        return found

    def finished_records(self, tasks: list[Task]) -> dict[str, TaskRecord]:
        return {task.task_id: record for task in tasks if (record := self.finished(task)) is not None}

    def save(self, record: TaskRecord) -> None:
        write_json(self.record_path(record.task_id), record.to_dict())

    def write_outputs(self, tasks: list[Task], records: dict[str, TaskRecord], output: Path | None) -> dict:
        """Rewrite predictions, submission (and a copy at `output`) and, with solutions, metrics."""
        attempts = {t.task_id: records[t.task_id].attempts if t.task_id in records else fallback_attempts(t)
                    for t in tasks}
        submission = build(attempts)
        problems = submission_problems(submission, inputs_per_task(tasks), "submission")
        if problems:  # never expected: a bug, so stop before a bad file replaces a good one
            raise RuntimeError("built an invalid submission: " + "; ".join(problems[:3]))
        records = {t.task_id: records[t.task_id] for t in tasks if t.task_id in records}  # the tasks' order, always
        predictions = {task_id: prediction_entries(record) for task_id, record in records.items()}
        write_json(self.path / "predictions.json", predictions)
        write_json(self.path / "submission.json", submission)
        if output is not None and output.resolve() != (self.path / "submission.json").resolve():
            write_json(output, submission)
        solutions = {t.task_id: t.solutions for t in tasks if t.solutions is not None and t.task_id in records}
        if not solutions:
            return {}
        rankings = {task_id: [[vote.grid for vote in votes] for votes in record.votes]
                    for task_id, record in records.items()}
        grids = {task_id: [[c.grid for c in output] for output in record.candidates] for task_id, record in records.items()}
        metrics = combined_metrics(grids, submission, solutions, rankings)
        write_json(self.path / "metrics.json", metrics, indent=1)
        return metrics


def prediction_entries(record: TaskRecord) -> list[list[dict]]:
    """A task's candidates for predictions.json, per test input: each grid with its cumulative
    log-probability, tokens and its grid's score under the run's rule, so that `metrics` ranks exactly
    as the run did."""
    entries = []
    for candidates, votes in zip(record.candidates, record.votes):
        scores = {grid_key(vote.grid): vote.score for vote in votes}
        entries.append([{"grid": c.grid, "logprob": c.logprob, "tokens": c.tokens,
                         "score": scores.get(grid_key(c.grid)) if c.grid else None} for c in candidates])
    return entries


def combined_metrics(predictions: dict, submission: dict, solutions: dict, rankings: dict | None = None) -> dict:
    """The official score and the research metrics: a summary, and the same per task."""
    research, official = research_metrics(predictions, solutions, rankings=rankings), score(submission, solutions)
    per_task = {task_id: {"score": official["per_task"][task_id], **values}
                for task_id, values in research.pop("per_task").items()}
    official.pop("per_task")
    return {"summary": {**official, **research}, "per_task": per_task}
