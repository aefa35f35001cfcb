"""A worker's side of the work queue: the live stack opened once, then one task per message, with the
worker's own budget planning each task from the driver's clock. `python -m arc_submit worker` (a local
process) and the Ray actor hold one each; neither knows the queue that feeds it.

Imports, inside run/: budget, record, runner, stack (never the queue, the executors or the pipeline).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from arc_submit.config import load_config
from arc_submit.data.tasks import load_tasks
from arc_submit.files import read_json, write_json
from arc_submit.run.budget import new_budget, plan_message, record_costs
from arc_submit.run.record import TaskRecord
from arc_submit.run.runner import TaskRunner, describe, task_error_record
from arc_submit.run.stack import open_stack, set_threads

log = logging.getLogger("arc_submit")


SHARED_ADAPTER = "shared-adapter"  # scope "all": the adapter trained once for the run, in the run dir
SHARED_TASKS = "shared-tasks.json"  # the task ids it is trained on (the run's selected tasks)


def serve_shared(runner: TaskRunner, run_dir: Path, tasks: list, deadline: float | None) -> None:
    """scope = "all": train the run's shared adapter once and save it (with shared-ttft.json), or serve the
    one already saved (by the first worker, or an earlier run of this run dir)."""
    folder = run_dir / SHARED_ADAPTER
    ids = [task.task_id for task in tasks]
    trained_on = folder / "arc-submit-tasks.json"
    if folder.is_dir() and trained_on.is_file() and read_json(trained_on) == ids:
        runner.load_shared(folder, tasks)
        log.info("scope all: serving the shared adapter trained before (%s)", folder)
        return
    if folder.is_dir():  # trained on other tasks (a resume with another limit or shard): trained again
        log.info("scope all: the shared adapter in %s was trained on other tasks; training it again", folder)
        shutil.rmtree(folder)
    result = runner.train_shared(tasks, deadline, save_to=folder)
    write_json(trained_on, ids)
    write_json(run_dir / "shared-ttft.json", result.to_dict())


class WorkerState:
    """What a worker keeps between tasks: the run's config and tasks, the live stack, its budget."""

    def __init__(self, run_dir: Path, index: int, heartbeat: Callable[[str], None] = lambda stage: None):
        config = load_config(str(run_dir / "config.toml"))
        self.tasks = {task.task_id: task for task in load_tasks(run_dir / "challenges.json")}
        set_threads(config)
        heartbeat("starting")
        self.runner = TaskRunner(config, open_stack(config, progress=False, run_dir=run_dir), heartbeat=heartbeat)
        self.budget = new_budget(config)
        if config.ttft.scope == "all" and config.ttft.steps:
            listed = run_dir / SHARED_TASKS
            chosen = [self.tasks[task_id] for task_id in read_json(listed)] if listed.is_file() else list(self.tasks.values())
            serve_shared(self.runner, run_dir, chosen, self.budget.shared_ttft_deadline())

    def run(self, message: dict) -> TaskRecord:
        """The task of a queue message (arc_submit.run.budget.plan_message); RunStopped on a code error."""
        task = self.tasks[message["task"]]
        try:
            plan = plan_message(self.budget, message, task, self.runner.stack.builder, self.runner.config, self.tasks)
            record = self.runner.run_task(task, plan)
        except Exception as error:  # noqa: BLE001 - under run.on_error = degrade it costs the task; else raised
            record = task_error_record(task, self.runner.config, error)
        record_costs(self.budget, record)
        log.info("%s", describe(record))
        return record
