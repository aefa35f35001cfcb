"""The task loop, one for every process that runs tasks (TaskLoop): the session opened once, then one task
at a time, planned on a budget. The single process drives it itself (run/pipeline.py); a worker's side of the
work queue (WorkerState: `python -m arc_submit worker`, a local process, and the Ray actor hold one each)
feeds it one task per message, with the worker's own budget planning each task from the driver's clock;
neither knows the queue that feeds it.

Imports, inside run/: budget, record, runner, session (never the queue, the executors or the pipeline).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from arc_submit.config import Config, load_config
from arc_submit.data.tasks import Task, load_tasks
from arc_submit.files import read_json, write_json
from arc_submit.run.budget import Budget, TaskPlan, new_budget, plan_message, record_costs
from arc_submit.run.record import TaskRecord
from arc_submit.run.runner import TaskRunner, describe, task_error_record
from arc_submit.run.session import open_session, set_threads

log = logging.getLogger("arc_submit")


SHARED_ADAPTER = "shared-adapter"  # scope "all": the adapter trained once for the run, in the run dir
SHARED_TASKS = "shared-tasks.json"  # the task ids it is trained on (the run's selected tasks)


def serve_shared(runner: TaskRunner, run_dir: Path, tasks: list, end: float | None) -> None:
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
    result = runner.train_shared(tasks, end, save_to=folder)
    write_json(trained_on, ids)
    write_json(run_dir / "shared-ttft.json", result.to_dict())


class TaskLoop:
    """The one way tasks run in a process, for the single process and for every worker alike: the session
    opened once (and the shared adapter of scope "all" served, trained on `selected`), then per task: plan it,
    run it (an error outside its guarded stages costs the task under run.on_error = degrade, else goes up), and
    count what it cost into the budget."""

    def __init__(self, config: Config, run_dir: Path, selected: list[Task], budget: Budget,
                 clock: Callable[[], float] = time.monotonic, progress: bool = False,
                 heartbeat: Callable[[str], None] = lambda stage: None):
        self.config, self.budget = config, budget
        self.session = open_session(config, progress, clock, run_dir)
        self.runner = TaskRunner(config, self.session, clock, heartbeat)
        if config.ttft.scope == "all" and config.ttft.steps:
            serve_shared(self.runner, run_dir, selected, budget.shared_ttft_end())

    def run(self, task: Task, plan: Callable[[], TaskPlan]) -> TaskRecord:
        """The task's record; `plan()` plans it (on the budget, after the tasks before it)."""
        try:
            record = self.runner.run_task(task, plan())
        except Exception as error:  # noqa: BLE001 - under run.on_error = degrade it costs the task; else raised
            record = task_error_record(task, self.config, error)
        record_costs(self.budget, record)
        return record


class WorkerState:
    """A worker's TaskLoop, set up from the run dir: the run's config and tasks, its own budget; one task per
    queue message."""

    def __init__(self, run_dir: Path, index: int, heartbeat: Callable[[str], None] = lambda stage: None):
        config = load_config(str(run_dir / "config.toml"))
        self.tasks = {task.task_id: task for task in load_tasks(run_dir / "challenges.json")}
        set_threads(config)
        heartbeat("starting")
        listed = run_dir / SHARED_TASKS
        selected = ([self.tasks[task_id] for task_id in read_json(listed)] if listed.is_file()
                    else list(self.tasks.values()))
        self.loop = TaskLoop(config, run_dir, selected, new_budget(config), heartbeat=heartbeat)

    def run(self, message: dict) -> TaskRecord:
        """The task of a queue message (arc_submit.run.budget.plan_message); RunStopped on a code error."""
        task, loop = self.tasks[message["task"]], self.loop
        record = loop.run(task, lambda: plan_message(loop.budget, message, task, loop.session.builder, loop.config,
                                                     self.tasks))
        log.info("%s", describe(record))
        return record
