"""Time budget: plan each task's work from measured rates so the run ends within `--time-budget`.

When the time left cannot cover the remaining tasks at the measured rate, a task gets fewer TTFT
steps ("cut"), then no TTFT ("no_ttft"), then fallback attempts without any model work ("fallback").
The clock is injected, so the logic is tested with a fake one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MODES = ("full", "cut", "no_ttft", "fallback")
FIRST_TASK_TTFT_SHARE = 0.5  # before anything is measured, TTFT may use half of a task's share


@dataclass(frozen=True)
class TaskPlan:
    mode: str  # one of MODES
    steps: int
    deadline: float | None  # clock time by which TTFT must stop (None: no limit)
    reason: str = ""


@dataclass
class Budget:
    """Plans tasks against `seconds` of wall time that started at `start` on `clock` (0 = no budget)."""

    seconds: float
    steps: int
    clock: Callable[[], float] = time.monotonic
    start: float | None = None
    reserve_fraction: float = 0.05
    min_steps_fraction: float = 0.1  # fewer steps than this share of the configured ones: skip TTFT
    step_seconds: list[float] = field(default_factory=list)
    sample_seconds: list[float] = field(default_factory=list)
    other_seconds: list[float] = field(default_factory=list)

    def __post_init__(self):
        if self.start is None:
            self.start = self.clock()

    def left(self) -> float:
        """Seconds left before the reserve is reached."""
        return self.start + self.seconds * (1 - self.reserve_fraction) - self.clock()

    def record(self, steps: int, ttft_seconds: float, sample_seconds: float, total_seconds: float) -> None:
        """Measured costs of a finished task (sample_seconds 0 when it did not sample)."""
        if steps:
            self.step_seconds.append(ttft_seconds / steps)
        if sample_seconds:
            self.sample_seconds.append(sample_seconds)
            self.other_seconds.append(max(0.0, total_seconds - ttft_seconds - sample_seconds))

    def plan(self, remaining_tasks: int) -> TaskPlan:
        """The plan for the next task, given how many tasks (this one included) are still to do."""
        if not self.seconds:
            return TaskPlan("full", self.steps, None)
        now, left = self.clock(), self.left()
        if left <= 0:
            return TaskPlan("fallback", 0, None, "time budget spent")
        share = left / max(1, remaining_tasks)
        if not self.sample_seconds:  # nothing measured yet: bound TTFT by a deadline instead
            return TaskPlan("full", self.steps, now + share * FIRST_TASK_TTFT_SHARE)
        inference = _mean(self.sample_seconds) + _mean(self.other_seconds)
        if share < inference:
            if left >= inference:
                return TaskPlan("no_ttft", 0, None, f"{share:.0f} s per task left, sampling alone takes {inference:.0f} s")
            return TaskPlan("fallback", 0, None, f"{left:.0f} s left, sampling takes {inference:.0f} s")
        for_ttft = share - inference
        affordable = math.floor(for_ttft / _mean(self.step_seconds)) if self.step_seconds else self.steps
        deadline = now + for_ttft
        if affordable >= self.steps:
            return TaskPlan("full", self.steps, deadline)
        if self.steps and affordable >= max(1, math.ceil(self.min_steps_fraction * self.steps)):
            return TaskPlan("cut", affordable, deadline, f"{affordable} of {self.steps} steps fit the time left")
        return TaskPlan("no_ttft", 0, None, f"{for_ttft:.0f} s per task for TTFT is too little")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
