"""The work queue's driver against a scripted executor (no processes): what a worker's error does under
run.on_error = stop and degrade."""

from __future__ import annotations

import pytest

from arc_submit.config import Config
from arc_submit.data.tasks import Pair, Task
from arc_submit.run.budget import new_budget
from arc_submit.run.executors import Event, Executor
from arc_submit.run.queue import drive
from arc_submit.run.runner import RunStopped

TASK = Task("aaaa0001", [Pair([[1]], [[2]])], [Pair([[3]])])


class Scripted(Executor):
    """One slot whose worker reports ready, then answers every task it is handed with an error."""

    slots = 1

    def __init__(self):
        self.starts, self.handed, self.queue = 0, [], []

    def start(self, slot: int) -> None:
        self.starts += 1
        self.queue.append(Event(slot, "ready"))

    def submit(self, slot: int, message: dict) -> None:
        self.handed.append(message["task"])
        self.queue.append(Event(slot, "error", "task aaaa0001: sampling failed: ValueError: boom"))

    def events(self, timeout: float) -> list[Event]:
        found, self.queue = self.queue, []
        return found

    def close(self) -> None:
        pass


def test_a_workers_error_stops_the_run_or_under_degrade_is_retried_then_marked_failed():
    budget = new_budget(Config())
    with pytest.raises(RunStopped, match="worker 1: task aaaa0001: sampling failed"):
        drive(Scripted(), [TASK], lambda record: None, budget, 0)
    executor, records = Scripted(), []
    summary = drive(executor, [TASK], records.append, budget, 0, on_error="degrade")
    assert executor.handed == ["aaaa0001", "aaaa0001"] and executor.starts == 3  # restarted after each error
    assert summary["retried"] == ["aaaa0001"] and summary["failed_by_workers"] == ["aaaa0001"]
    [record] = records
    assert record.mode == "fallback" and record.failed_stages == ["worker"] and "error twice" in record.reasons[0]
