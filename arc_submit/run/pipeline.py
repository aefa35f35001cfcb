"""The run: the tasks still to do (new ones first, then degraded ones when time allows), run in this
process or handed out by a work queue to worker processes, every record written as it arrives, and
submission.json valid from the first second to the last.

    python -m arc_submit --config smoke --seed 0 --challenges challenges.json --run-dir runs/smoke
    python -m arc_submit --config smoke --workers 2 ...       # a queue over two worker processes

Imports, inside run/: everything below it (queue, executors, runner, session, rundir, budget, shards);
nothing imports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from arc_submit.config import Config
from arc_submit.data.tasks import Task
from arc_submit.errors import EngineBroken
from arc_submit.files import write_json
from arc_submit.run.budget import Budget, new_budget, plan_task
from arc_submit.run.executors import make_executor
from arc_submit.run.queue import drive
from arc_submit.run.record import TaskRecord
from arc_submit.run.rundir import RunDir, outcome
from arc_submit.run.runner import RunStopped, describe
from arc_submit.run.shards import shard_tasks
from arc_submit.run.session import imported_versions, set_threads
from arc_submit.run.worker import SHARED_TASKS, TaskLoop

log = logging.getLogger("arc_submit")


@dataclass
class Pipeline:
    config: Config
    tasks: list[Task]
    run_dir: RunDir
    output: Path | None = None
    clock: Callable[[], float] = time.monotonic
    progress: bool = True
    shard: tuple[int, int] | None = None  # (i, n): run only the i-th of n shares of the tasks
    workers: int = 1  # more than 1, or a Ray executor: a work queue over workers (run.queue, run.executors)
    executor: str = "local"  # local (processes on this machine) | ray
    ray_address: str | None = None
    session: object = None
    summary: dict = field(default_factory=dict)
    records: dict[str, TaskRecord] = field(default_factory=dict)

    def run(self) -> dict:
        """Run every pending task; return a summary (and metrics when solutions are known)."""
        self.run_dir.lock()
        try:
            return self._run()
        finally:
            self.run_dir.unlock()

    def _run(self) -> dict:
        budget = new_budget(self.config, self.clock)
        self.run_dir.prepare(self.config)
        self.run_dir.save_tasks(self.tasks)
        selected = shard_tasks(self.tasks[: self.config.run.limit or None], self.shard)
        self.records = self.run_dir.finished_records(self.tasks)
        self.run_dir.write_outputs(self.tasks, self.records, self.output)
        fresh = [task for task in selected if task.task_id not in self.records]
        degraded = [task for task in selected if task.task_id in self.records and self.records[task.task_id].degraded]
        log.info("%d tasks: %d to run, %d degraded to redo when time allows, %d done in %s", len(selected),
                 len(fresh), len(degraded), len(selected) - len(fresh) - len(degraded), self.run_dir.path)
        pending, queue = fresh + degraded, {}
        if pending and (self.workers > 1 or self.executor == "ray"):
            shared = self.config.ttft.scope == "all" and self.config.ttft.steps > 0
            if shared:  # trained once, by the first worker, on the selected tasks; the others serve it
                write_json(self.run_dir.path / SHARED_TASKS, [task.task_id for task in selected])
            executor = make_executor(self.executor, self.run_dir.path, self.workers, self.config.run.threads,
                                     self.config.run.worker_timeout, self.ray_address)
            queue = drive(executor, pending, self.accept, budget, self.config.run.seed, self.config.run.on_error,
                          first_alone=shared)
        elif pending:
            self._run_here(pending, selected, budget)
        metrics = self.run_dir.write_outputs(self.tasks, self.records, self.output)
        done = [self.records[t.task_id] for t in selected if t.task_id in self.records]
        self.summary = {
            "tasks": len(selected), "ran": len(pending), "redone": len(degraded), **outcome(done), **queue,
            "engine_starts": self.session.sampler.engine_starts if self.session else queue.get("engine_starts", 0),
            "timings": {k: round(v, 3) for k, v in (self.session.timings if self.session else {}).items()},
            "model": self.model_used(),
            **({"versions": imported_versions()} if self.session else {}),  # at the end: peft is in by then
            "submission": str(self.output or self.run_dir.path / "submission.json"),
            **({"metrics": metrics["summary"]} if metrics else {}),
        }
        return self.summary

    def model_used(self) -> dict:
        """The base folder and the adapter (None: none) the run loaded, as the model name resolved."""
        from arc_submit.model.resolve import resolve

        resolved = self.session.resolved if self.session else resolve(self.config.model.name, self.config.model.base)
        return {"base": str(resolved.base_dir), "adapter": str(resolved.adapter_dir) if resolved.adapter_dir else None}

    def accept(self, record: TaskRecord) -> None:
        """A finished task: keep its record and rewrite the outputs; a task redone without time left keeps
        the record it had."""
        old = self.records.get(record.task_id)
        if old is not None and record.mode == "fallback" and not record.failed_stages:
            log.info("task %s: no time left to redo it; its earlier record stays (%s)", record.task_id, old.mode)
            return
        self.run_dir.save(record)
        self.records[record.task_id] = record
        self.run_dir.write_outputs(self.tasks, self.records, self.output)
        log.info("%s", describe(record))

    def _run_here(self, pending: list[Task], selected: list[Task], budget: Budget) -> None:
        """The tasks one after another in this process, on one task loop."""
        loop = TaskLoop(self.config, self.run_dir.path, selected, budget, self.clock, self.progress)
        self.session = loop.session
        from tqdm import tqdm

        for index, task in enumerate(tqdm(pending, desc="tasks", disable=not self.progress, dynamic_ncols=True)):
            later = pending[index + 1:]
            try:
                record = loop.run(task, lambda: plan_task(budget, len(pending) - index, task, loop.session.builder,
                                                          self.config, later))
            except EngineBroken as error:
                raise RunStopped(f"task {task.task_id}: {error}; a run in one process cannot start a fresh engine "
                                 "(with --workers, a fresh worker takes the task over)") from error
            self.accept(record)


def run_pipeline(config: Config, tasks: list[Task], run_dir: Path, output: Path | None, progress: bool = True,
                 shard: tuple[int, int] | None = None, workers: int = 1, executor: str = "local",
                 ray_address: str | None = None) -> dict:
    """Set up threads for a run, then run it."""
    if workers == 1 and executor == "local":
        set_threads(config)
    return Pipeline(config, tasks, RunDir(run_dir), output, progress=progress, shard=shard, workers=workers,
                    executor=executor, ray_address=ray_address).run()
