"""A worker's side of the work queue: the live stack opened once, then one task per message, with the
worker's own budget planning each task from the driver's clock. `python -m arc_submit worker` (a local
process) and the Ray actor hold one each; neither knows the queue that feeds it.

Imports, inside run/: budget, record, runner, stack (never the queue, the executors or the pipeline).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from arc_submit.config import load_config
from arc_submit.data.tasks import load_tasks
from arc_submit.files import write_json
from arc_submit.run.budget import new_budget, plan_task, record_costs
from arc_submit.run.record import TaskRecord
from arc_submit.run.runner import TaskRunner, describe
from arc_submit.run.stack import open_stack, set_threads

log = logging.getLogger("arc_submit")


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
            result = self.runner.train_shared(list(self.tasks.values()), self.budget.shared_ttft_deadline())
            if index == 0:
                write_json(run_dir / "shared-ttft.json", result.to_dict())

    def run(self, message: dict) -> TaskRecord:
        """The task of a queue message {"task", "elapsed", "remaining"}; RunStopped on a code error."""
        self.budget.start = self.budget.clock() - message["elapsed"]
        task = self.tasks[message["task"]]
        plan = plan_task(self.budget, message["remaining"], task, self.runner.stack.builder, self.runner.config)
        record = self.runner.run_task(task, plan)
        record_costs(self.budget, record)
        log.info("%s", describe(record))
        return record
