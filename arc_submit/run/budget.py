"""Time budget: plan each task's work from measured rates so the run ends within `--time-budget`, and
cut work only when the budget binds (costs per token: arc_submit.run.costs), so that a run repeats byte for byte on a fast or a slow machine
as long as the budget is not reached.

A task gets all its work while the remaining tasks, at the rates measured so far, fit the time left;
its ends (`ttft_end` for TTFT, `end` for the whole task) then only guard the run's end (a task reaches
them only when the budget binds). When they do not fit, a task gets fewer TTFT steps ("cut"), then no
TTFT and fewer views ("no_ttft"), then fallback attempts without any model work ("fallback"); its record
says which and why. The clock is injected, so the logic is tested with a fake one.

Imports, inside run/: costs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from arc_submit.config import Config
from arc_submit.run.costs import Meter, Rates, TaskWork, task_work

MODES = ("full", "cut", "no_ttft", "fallback")
FIRST_TASK_SHARE = 0.5  # before anything is measured, a task may use at most this share of the time left
SHARED_TTFT_SHARE = 0.5  # scope "all": the shared adapter may use at most this share of the time budget

@dataclass(frozen=True)
class TaskPlan:
    mode: str  # one of MODES
    steps: int
    ttft_end: float | None  # clock time by which TTFT must end (None: no limit)
    reason: str = ""
    views: int | None = None  # augmented views per test input (None: as configured)
    end: float | None = None  # clock time by which the whole task must end (sampling, DFS, scoring)


@dataclass
class Budget:
    """Plans tasks against `seconds` of wall time that started at `start` on `clock` (0 = no budget), from
    the per-token costs (arc_submit.run.costs) measured on the tasks finished so far."""

    seconds: float
    steps: int
    clock: Callable[[], float] = time.monotonic
    start: float | None = None
    reserve_fraction: float = 0.05
    min_steps_fraction: float = 0.1  # fewer steps than this share of the configured ones: skip TTFT
    views: int = 1  # views per test input as configured
    meter: Meter = field(default_factory=Meter)
    works: dict[str, TaskWork | None] = field(default_factory=dict)  # task id -> its tokens, counted once

    def __post_init__(self):
        if self.start is None:
            self.start = self.clock()

    def left(self) -> float:
        """Seconds left before the reserve is reached."""
        return self.start + self.seconds * (1 - self.reserve_fraction) - self.clock()

    def work_of(self, task, builder, config: Config) -> TaskWork | None:
        """The task's tokens (arc_submit.run.costs.task_work), counted once per run."""
        if task.task_id not in self.works:
            self.works[task.task_id] = task_work(task, builder, config)
        return self.works[task.task_id]

    def shared_ttft_end(self) -> float | None:
        """scope "all": when the shared adapter's training must stop (None: no budget)."""
        return self.clock() + self.left() * SHARED_TTFT_SHARE if self.seconds else None

    def plan(self, remaining_tasks: int, work: TaskWork | None = None, others: list[TaskWork | None] | None = None,
             running: list[TaskWork | None] = (), workers: int = 1) -> TaskPlan:
        """The plan for the next task, given how many tasks (this one included) are still to do per worker and
        this task's work in tokens (None: as the finished tasks' mean). `others`, when known: the work of
        every task still queued after it (None for a task of unknown work), and `running` that of the tasks
        other workers are running (counted half done), shared by `workers`; else the others are
        `remaining_tasks - 1` tasks of the mean work."""
        if not self.seconds:
            return TaskPlan("full", self.steps, None)
        now, left = self.clock(), self.left()
        if left <= 0:
            return TaskPlan("fallback", 0, None, "time budget spent")
        if not self.meter.sampled:  # nothing measured yet: only the run's end bounds the task
            end = now + left * FIRST_TASK_SHARE
            return TaskPlan("full", self.steps, end, end=end)
        rates, typical = self.meter.rates(), self.meter.mean_work()
        work = work or typical

        def total(steps: int, views: int) -> float:
            """The other tasks' seconds at `steps` and `views`, per worker."""
            if others is None:
                return max(0, remaining_tasks - 1) * rates.seconds(typical, steps, views)
            seconds = sum(rates.seconds(w or typical, steps, views) for w in others)
            return (seconds + 0.5 * sum(rates.seconds(w or typical, steps, views) for w in running)) / workers

        this, rest = rates.seconds(work, self.steps, self.views), total(self.steps, self.views)
        if this + rest <= left:
            end = now + left - total(0, 1)  # only when it binds
            return TaskPlan("full", self.steps, end - rates.seconds(work, 0, self.views), end=end)
        share = left * this / (this + rest) if this + rest else left / max(1, remaining_tasks)
        return self._cut(now, share, left, rates, work)

    def _cut(self, now: float, share: float, left: float, rates: Rates, work: TaskWork) -> TaskPlan:
        """The budget binds: this task's share of the time left (by its size against the others') decides
        its work."""
        inference = rates.seconds(work, 0, self.views)
        if share >= inference:
            for_ttft = share - inference
            step = rates.step_seconds(work)
            affordable = math.floor(for_ttft / step) if step else self.steps
            if affordable >= self.steps:
                return TaskPlan("full", self.steps, now + for_ttft, end=now + share)
            if self.steps and affordable >= max(1, math.ceil(self.min_steps_fraction * self.steps)):
                return TaskPlan("cut", affordable, now + for_ttft, f"{affordable} of {self.steps} steps fit the time left",
                                end=now + share)
        view = rates.view_seconds(work)
        views = min(self.views, math.floor((share - rates.overhead_s) / view)) if view else self.views
        if views >= 1:
            reason = f"{share:.0f} s per task left: no TTFT" + (f", {views} of {self.views} views" if views < self.views else "")
            return TaskPlan("no_ttft", 0, None, reason, views, end=now + share)
        one_view = rates.seconds(work, 0, 1)
        if left >= one_view:
            return TaskPlan("no_ttft", 0, None, f"{share:.0f} s per task left: no TTFT, 1 view", 1, end=now + left)
        return TaskPlan("fallback", 0, None, f"{left:.0f} s left, sampling takes {one_view:.0f} s")


# ----------------------------------------------------------------------------- a run's budget


def new_budget(config: Config, clock: Callable[[], float] = time.monotonic, start: float | None = None) -> Budget:
    return Budget(config.run.time_budget, config.ttft.steps if config.ttft.scope == "task" else 0, clock, start,
                  reserve_fraction=config.run.reserve_fraction, views=config.sampling.augmentations)


def plan_message(budget: Budget, message: dict, task, builder, config: Config, tasks: dict) -> TaskPlan:
    """A worker's plan for the task of a queue message {"task", "elapsed", "remaining", "queued",
    "running", "workers", "meter"} (`tasks`: the run's tasks by id): its budget's clock set to the
    driver's (`elapsed` since the run started) and its costs to the driver's (measured on every finished
    task), then planned as `plan_task` against the tasks still queued and those other workers run."""
    budget.start = budget.clock() - message["elapsed"]
    if "meter" in message:  # the costs of every finished task, whichever worker ran it
        budget.meter = Meter.from_dict(message["meter"])
    queued = [tasks[task_id] for task_id in message.get("queued", ())]
    running = [tasks[task_id] for task_id in message.get("running", ())]
    return plan_task(budget, message["remaining"], task, builder, config, queued if "queued" in message else None,
                     running, message.get("workers", 1))


def plan_task(budget: Budget, remaining_tasks: int, task, builder, config: Config, others: list | None = None,
              running: list = (), workers: int = 1) -> TaskPlan:
    """The plan for `task`, against the tasks `others` still to do after it and those `running` on the
    other `workers` (None: `remaining_tasks - 1` typical ones); each task's tokens are counted (once per
    task: `Budget.works`) only when a budget is set and a finished task measured the machine."""
    if not (budget.seconds and budget.meter.sampled):
        return budget.plan(remaining_tasks)
    work = budget.work_of(task, builder, config)
    if others is None:
        return budget.plan(remaining_tasks, work)
    return budget.plan(remaining_tasks, work, [budget.work_of(t, builder, config) for t in others],
                       [budget.work_of(t, builder, config) for t in running], workers)


def record_costs(budget: Budget, record) -> None:
    """What a finished task (its TaskRecord) cost, for the planning of the next ones; a task that did not
    run its stages (a failed record, without timings) tells nothing of the machine."""
    if "total_s" in record.timings:
        budget.meter.add_record(record)
