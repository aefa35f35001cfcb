"""Time budget: plan each task's work from measured rates so the run ends within `--time-budget`, and
cut work only when the budget binds, so that a run repeats byte for byte on a fast or a slow machine
as long as the budget is not reached.

A task gets all its work while the remaining tasks, at the rates measured so far, fit the time left;
its deadlines then only guard the run's end (a task reaches them only when the budget binds). When they
do not fit, a task gets fewer TTFT steps ("cut"), then no TTFT and fewer views ("no_ttft"), then fallback
attempts without any model work ("fallback"); its record says which and why. The clock is injected, so
the logic is tested with a fake one.

Imports, inside run/: nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from arc_submit.config import Config

MODES = ("full", "cut", "no_ttft", "fallback")
FIRST_TASK_SHARE = 0.5  # before anything is measured, a task may use at most this share of the time left


@dataclass(frozen=True)
class TaskPlan:
    mode: str  # one of MODES
    steps: int
    deadline: float | None  # clock time by which TTFT must stop (None: no limit)
    reason: str = ""
    views: int | None = None  # augmented views per test input (None: as configured)
    end: float | None = None  # clock time by which the whole task must end (sampling, DFS, scoring)


@dataclass
class Budget:
    """Plans tasks against `seconds` of wall time that started at `start` on `clock` (0 = no budget)."""

    seconds: float
    steps: int
    clock: Callable[[], float] = time.monotonic
    start: float | None = None
    reserve_fraction: float = 0.05
    min_steps_fraction: float = 0.1  # fewer steps than this share of the configured ones: skip TTFT
    views: int = 1  # views per test input as configured
    step_seconds: list[float] = field(default_factory=list)
    view_seconds: list[float] = field(default_factory=list)  # sampling (and scoring) per view
    other_seconds: list[float] = field(default_factory=list)

    def __post_init__(self):
        if self.start is None:
            self.start = self.clock()

    def left(self) -> float:
        """Seconds left before the reserve is reached."""
        return self.start + self.seconds * (1 - self.reserve_fraction) - self.clock()

    def record(self, steps: int, ttft_seconds: float, sample_seconds: float, total_seconds: float,
               views: int | None = None) -> None:
        """Measured costs of a finished task (sample_seconds 0 when it did not sample)."""
        if steps:
            self.step_seconds.append(ttft_seconds / steps)
        if sample_seconds:
            self.view_seconds.append(sample_seconds / max(1, views or self.views))
            self.other_seconds.append(max(0.0, total_seconds - ttft_seconds - sample_seconds))

    def inference(self, views: int) -> float:
        """Expected seconds of a task without TTFT: sampling `views` views, and the rest."""
        return views * _mean(self.view_seconds) + _mean(self.other_seconds)

    def plan(self, remaining_tasks: int) -> TaskPlan:
        """The plan for the next task, given how many tasks (this one included) are still to do."""
        if not self.seconds:
            return TaskPlan("full", self.steps, None)
        now, left = self.clock(), self.left()
        if left <= 0:
            return TaskPlan("fallback", 0, None, "time budget spent")
        if not self.view_seconds:  # nothing measured yet: only the run's end bounds the task
            end = now + left * FIRST_TASK_SHARE
            return TaskPlan("full", self.steps, end, end=end)
        step = _mean(self.step_seconds)
        others = max(0, remaining_tasks - 1)
        if remaining_tasks * (self.steps * step + self.inference(self.views)) <= left:
            end = now + left - others * self.inference(1)  # reached only when the budget binds
            return TaskPlan("full", self.steps, end - self.inference(self.views), end=end)
        return self._cut(now, left / max(1, remaining_tasks), left, step)

    def _cut(self, now: float, share: float, left: float, step: float) -> TaskPlan:
        """The budget binds: this task's fair share of the time left decides its work."""
        inference = self.inference(self.views)
        if share >= inference:
            for_ttft = share - inference
            affordable = math.floor(for_ttft / step) if step else self.steps
            if affordable >= self.steps:
                return TaskPlan("full", self.steps, now + for_ttft, end=now + share)
            if self.steps and affordable >= max(1, math.ceil(self.min_steps_fraction * self.steps)):
                return TaskPlan("cut", affordable, now + for_ttft, f"{affordable} of {self.steps} steps fit the time left",
                                end=now + share)
        view = _mean(self.view_seconds)
        views = min(self.views, math.floor((share - _mean(self.other_seconds)) / view)) if view else self.views
        if views >= 1:
            reason = f"{share:.0f} s per task left: no TTFT" + (f", {views} of {self.views} views" if views < self.views else "")
            return TaskPlan("no_ttft", 0, None, reason, views, end=now + share)
        if left >= self.inference(1):
            return TaskPlan("no_ttft", 0, None, f"{share:.0f} s per task left: no TTFT, 1 view", 1, end=now + left)
        return TaskPlan("fallback", 0, None, f"{left:.0f} s left, sampling takes {self.inference(1):.0f} s")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


# ----------------------------------------------------------------------------- a run's budget

SHARED_TTFT_SHARE = 0.5  # scope "all": the shared adapter may use at most this share of the time budget


def new_budget(config: Config, clock: Callable[[], float] = time.monotonic, start: float | None = None) -> Budget:
    return Budget(config.run.time_budget, config.ttft.steps if config.ttft.scope == "task" else 0, clock, start,
                  reserve_fraction=config.run.reserve_fraction, views=config.sampling.augmentations)


def record_costs(budget: Budget, record) -> None:
    """What a finished task (its TaskRecord) cost, for the planning of the next ones."""
    timings = record.timings
    budget.record(record.ttft.steps if record.ttft else 0, timings.get("ttft_s", 0) + timings.get("load_s", 0),
                  timings.get("sample_s", 0) + timings.get("score_s", 0), timings["total_s"],
                  record.prompts_per_input or None)
