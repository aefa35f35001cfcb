"""The work queue: tasks handed out one at a time, largest first, to whichever worker is free; a worker
that dies, or stays silent past `run.worker_timeout`, is restarted and its task retried once, then
marked failed. The driver (the run's own process) writes every record as it arrives, so results do
not depend on which worker ran a task. An executor owns the workers; `LocalExecutor` runs them as
processes on this machine (one per GPU, or a share of the CPU cores), and another executor (Ray) can
take the same queue (arc_submit.run.executors).

    python -m arc_submit --workers 4 ...       # worker logs in RUN_DIR/workers/worker-N.log

Imports, inside run/: executors (the seam only), budget, record, rundir, runner.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable

from arc_submit.data.tasks import Task
from arc_submit.run.budget import Budget, record_costs
from arc_submit.run.executors import Executor
from arc_submit.run.record import RecordError, TaskRecord
from arc_submit.run.runner import RunStopped, failed_record

log = logging.getLogger("arc_submit")
RETRIES = 1  # a task whose worker died is handed out once more, then marked failed


def drive(executor: Executor, tasks: list[Task], accept: Callable[[TaskRecord], None], budget: Budget,
          seed: int, on_error: str = "stop", first_alone: bool = False) -> dict:
    """Run `tasks` on the executor's workers; `accept` gets each record. Returns what happened. A worker's
    error stops the run, or with `on_error = "degrade"` is handled like its death (restarted, its task
    retried once, then marked failed). `first_alone`: the other workers start once the first is ready
    (it trains what they then load: the shared adapter of scope "all")."""
    queue = deque(sorted(tasks, key=lambda task: (-task.cells(), task.task_id)))
    attempts: Counter = Counter()
    busy: dict[int, Task] = {}
    ready: set[int] = set()
    never_ready: Counter = Counter()
    retried, failed = [], []
    waiting = list(range(1, executor.slots)) if first_alone else []
    for slot in range(executor.slots):
        if slot not in waiting:
            executor.start(slot)
    try:
        while queue or busy:
            for slot in sorted(ready - busy.keys()):
                if not queue:
                    break
                task = queue.popleft()
                attempts[task.task_id] += 1
                busy[slot] = task
                remaining = math.ceil((len(queue) + len(busy)) / executor.slots)
                executor.submit(slot, {"task": task.task_id, "elapsed": budget.clock() - budget.start,
                                       "remaining": remaining, "workers": executor.slots,
                                       "queued": [t.task_id for t in queue],
                                       "running": [t.task_id for s, t in busy.items() if s != slot],
                                       "meter": budget.meter.to_dict()})
            for event in executor.events(timeout=1.0):
                if event.kind == "ready":
                    ready.add(event.slot)
                    never_ready[event.slot] = 0
                    for slot in waiting:
                        executor.start(slot)
                    waiting = []
                elif event.kind == "record":
                    task = busy.pop(event.slot)
                    record = _read_record(event.data, task)
                    accept(record)
                    record_costs(budget, record)
                elif event.kind == "error" and on_error != "degrade":
                    raise RunStopped(f"worker {event.slot + 1}: {event.data}")
                elif event.kind == "retried":
                    retried.append(busy[event.slot].task_id)
                elif event.kind == "lost":
                    task = busy.pop(event.slot, None)
                    never_ready[event.slot] += event.slot not in ready
                    ready.discard(event.slot)
                    if never_ready[event.slot] >= 2:
                        raise RunStopped(f"worker {event.slot + 1} was lost twice before it could take a task "
                                         f"({event.data}); see its log in workers/")
                    executor.start(event.slot)
                    if task is not None:
                        failed.append(task.task_id)
                        accept(failed_record(task, seed, f"worker lost twice while running it ({event.data})"))
                elif event.kind in ("died", "hung", "error"):
                    task = busy.pop(event.slot, None)
                    was_ready = event.slot in ready
                    ready.discard(event.slot)
                    never_ready[event.slot] += not was_ready
                    if never_ready[event.slot] >= 2:
                        raise RunStopped(f"worker {event.slot + 1} {event.kind} twice before it could take a task "
                                         f"({event.data}); see its log in workers/")
                    log.warning("worker %d %s (%s)%s: restarting it", event.slot + 1, event.kind, event.data,
                                f" while running task {task.task_id}" if task else "")
                    executor.start(event.slot)
                    if task is None:
                        continue
                    if attempts[task.task_id] <= RETRIES:
                        queue.appendleft(task)
                        retried.append(task.task_id)
                    else:
                        failed.append(task.task_id)
                        accept(failed_record(task, seed, f"worker {event.kind} twice while running it ({event.data})"))
    finally:
        executor.close()
    return {"workers": executor.slots, "retried": retried, "failed_by_workers": failed,
            "engine_starts": executor.engine_starts}


def _read_record(data: object, task: Task) -> TaskRecord:
    try:
        record = TaskRecord.from_dict(data)
    except RecordError as error:
        raise RunStopped(f"a worker sent an unreadable record for task {task.task_id}: {error}") from None
    if record.task_id != task.task_id:
        raise RunStopped(f"a worker sent the record of task {record.task_id} for task {task.task_id}")
    return record
