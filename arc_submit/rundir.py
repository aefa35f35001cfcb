"""The run dir: resolved `config.toml`, one record per finished task (`tasks/<task_id>.json`), and the
outputs rebuilt from the records after every task: `predictions.json`, `submission.json` (always valid,
fallback attempts where a task has no answer yet) and `metrics.json` when solutions are known.

A rerun with the same run dir skips the tasks whose record matches the task's content.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from arc_submit.config import Config, to_toml
from arc_submit.errors import UserError
from arc_submit.files import read_json, write_json, write_text
from arc_submit.metrics import research_metrics, score
from arc_submit.submission import build, submission_problems, inputs_per_task
from arc_submit.tasks import Grid, Task

# Settings that may change between a run and its resumption without invalidating finished tasks.
RESUMABLE = {("run", "time_budget"), ("run", "limit"), ("run", "threads"), ("run", "reserve_fraction")}


def task_hash(task: Task) -> str:
    """A fingerprint of what the model sees of a task (its solutions excluded)."""
    return hashlib.sha256(json.dumps(task.to_challenge(), sort_keys=True).encode()).hexdigest()[:16]


def fill_attempts(ranked: list[Grid], test_input: Grid, k: int = 2) -> list[Grid]:
    """The top-k voted grids; free places get the test input (a cheap guess), then `[]`."""
    attempts = list(ranked[:k])
    if len(attempts) < k and test_input not in attempts:
        attempts.append(test_input)
    return attempts + [[] for _ in range(k - len(attempts))]


def outcome(records: list[dict]) -> dict:
    """How the tasks of these records ended: tasks per mode, and the tasks where a stage failed."""
    modes = [record["mode"] for record in records]
    return {"modes": {mode: modes.count(mode) for mode in sorted(set(modes))},
            "failed_tasks": [record["task_id"] for record in records if record.get("failed_stages")]}


def work_seconds(record: dict) -> tuple[float, float]:
    """(seconds in optimizer steps, seconds generating) of a task record; older records without the
    finer timings fall back to the whole TTFT and sampling stages."""
    ttft = record.get("ttft") or {}
    timings = record["timings"]
    return ttft.get("compute_seconds") or ttft.get("seconds") or 0.0, timings.get("generate_s") or timings.get("sample_s", 0.0)


def fallback_attempts(task: Task) -> list[list[Grid]]:
    return [fill_attempts([], pair.input) for pair in task.test]


def _config_differences(old: dict, new: dict, path: tuple = ()) -> list[str]:
    differences = []
    for key in sorted(set(old) | set(new)):
        where = (*path, key)
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += _config_differences(a, b, where)
        elif a != b and where not in RESUMABLE:
            differences.append(f"{'.'.join(where)}: {a!r} -> {b!r}")
    return differences


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tasks_dir = self.path / "tasks"

    def prepare(self, config: Config) -> None:
        """Create the run dir, or check that an existing one was made with the same settings."""
        import tomllib

        saved = self.path / "config.toml"
        if saved.is_file():
            old = tomllib.loads(saved.read_text(encoding="utf-8"))
            differences = _config_differences(old, config.to_dict())
            if differences:
                raise UserError(
                    f"--run-dir {self.path}: holds a run with other settings ({'; '.join(differences[:3])}); "
                    "resume it with the same settings or choose a new --run-dir"
                )
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        write_text(saved, to_toml(config))

    def save_tasks(self, tasks: list[Task]) -> None:
        """The run's tasks in Kaggle layout, so that reports can draw them later."""
        from arc_submit.tasks import kaggle_layout

        challenges, solutions = kaggle_layout(tasks)
        write_json(self.path / "challenges.json", challenges)
        if solutions:
            write_json(self.path / "solutions.json", solutions)

    def record_path(self, task_id: str) -> Path:
        return self.tasks_dir / f"{task_id}.json"

    def finished(self, task: Task) -> dict | None:
        """The task's record when it finished with the same content, else None."""
        path = self.record_path(task.task_id)
        if not path.is_file():
            return None
        try:
            record = read_json(path)
        except UserError:
            return None  # a damaged record is redone, not trusted
        return record if record.get("task_hash") == task_hash(task) else None

    def save(self, record: dict) -> None:
        write_json(self.record_path(record["task_id"]), record)

    def write_outputs(self, tasks: list[Task], records: dict[str, dict], output: Path | None) -> dict:
        """Rewrite predictions, submission (and a copy at `output`) and, with solutions, metrics."""
        attempts = {t.task_id: records[t.task_id]["attempts"] if t.task_id in records else fallback_attempts(t)
                    for t in tasks}
        submission = build(attempts)
        problems = submission_problems(submission, inputs_per_task(tasks), "submission")
        if problems:  # never expected: a bug, so stop before a bad file replaces a good one
            raise RuntimeError("built an invalid submission: " + "; ".join(problems[:3]))
        predictions = {task_id: [[c["grid"] for c in output] for output in record["candidates"]]
                       for task_id, record in records.items()}
        write_json(self.path / "predictions.json", predictions)
        write_json(self.path / "submission.json", submission)
        if output is not None and output.resolve() != (self.path / "submission.json").resolve():
            write_json(output, submission)
        solutions = {t.task_id: t.solutions for t in tasks if t.solutions is not None and t.task_id in records}
        if not solutions:
            return {}
        rankings = {task_id: [[vote["grid"] for vote in votes] for votes in record["votes"]]
                    for task_id, record in records.items()}
        metrics = combined_metrics(predictions, submission, solutions, rankings)
        write_json(self.path / "metrics.json", metrics, indent=1)
        return metrics


def combined_metrics(predictions: dict, submission: dict, solutions: dict, rankings: dict | None = None) -> dict:
    """The official score and the research metrics: a summary, and the same per task."""
    research, official = research_metrics(predictions, solutions, rankings=rankings), score(submission, solutions)
    per_task = {task_id: {"score": official["per_task"][task_id], **values}
                for task_id, values in research.pop("per_task").items()}
    official.pop("per_task")
    return {"summary": {**official, **research}, "per_task": per_task}
