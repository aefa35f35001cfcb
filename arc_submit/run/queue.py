"""The work queue: tasks handed out one at a time, largest first, to whichever worker is free; a worker
that dies, or stays silent past `run.worker_timeout`, is restarted and its task retried once, then
marked failed. The driver (the run's own process) writes every record as it arrives, so results do
not depend on which worker ran a task. An executor owns the workers; `LocalExecutor` runs them as
processes on this machine (one per GPU, or a share of the CPU cores), and another executor (Ray) can
take the same queue.

    python -m arc_submit --workers 4 ...       # worker logs in RUN_DIR/workers/worker-N.log
"""

from __future__ import annotations

import json
import logging
import math
import os
import selectors
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arc_submit.data.submission import fallback_attempts
from arc_submit.data.tasks import Task
from arc_submit.run.budget import Budget
from arc_submit.run.record import RecordError, TaskRecord
from arc_submit.run.rundir import task_hash
from arc_submit.run.runner import RunStopped, derive_seed

log = logging.getLogger("arc_submit")
RETRIES = 1  # a task whose worker died is handed out once more, then marked failed


@dataclass(frozen=True)
class Event:
    """What a worker said or did: ready, heartbeat, record (data: the record), error (data: the message),
    died or hung (data: what the executor saw; the queue restarts the worker and retries the task), or,
    from executors that restart and retry by themselves (Ray), retried (the task in flight was run again)
    and lost (it failed again: the task is marked failed)."""

    slot: int
    kind: str
    data: object = None


class Executor(ABC):
    """Runs `slots` workers, each holding a live stack, taking one task at a time."""

    slots: int

    @abstractmethod
    def start(self, slot: int) -> None:
        """Start (or restart) the worker of a slot; it reports `ready` when it can take tasks."""

    @abstractmethod
    def submit(self, slot: int, message: dict) -> None:
        """Hand a task to a ready worker: {"task": id, "elapsed": s, "remaining": n}."""

    @abstractmethod
    def events(self, timeout: float) -> list[Event]:
        """What happened since the last call, waiting up to `timeout` seconds for something."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def engine_starts(self) -> int:
        return 0


def failed_record(task: Task, seed: int, reason: str) -> TaskRecord:
    """The record of a task that no worker could finish: fallback attempts, and why."""
    return TaskRecord(task.task_id, task_hash(task), derive_seed(seed, task.task_id), "fallback", [reason],
                      candidates=[[] for _ in task.test], votes=[[] for _ in task.test],
                      attempts=fallback_attempts(task), failed_stages=["worker"])


def drive(executor: Executor, tasks: list[Task], accept: Callable[[TaskRecord], None], budget: Budget,
          seed: int) -> dict:
    """Run `tasks` on the executor's workers; `accept` gets each record. Returns what happened."""
    queue = deque(sorted(tasks, key=lambda task: (-task.cells(), task.task_id)))
    attempts: Counter = Counter()
    busy: dict[int, Task] = {}
    ready: set[int] = set()
    never_ready: Counter = Counter()
    retried, failed = [], []
    for slot in range(executor.slots):
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
                                       "remaining": remaining})
            for event in executor.events(timeout=1.0):
                if event.kind == "ready":
                    ready.add(event.slot)
                    never_ready[event.slot] = 0
                elif event.kind == "record":
                    task = busy.pop(event.slot)
                    accept(_read_record(event.data, task))
                elif event.kind == "error":
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
                elif event.kind in ("died", "hung"):
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


# ----------------------------------------------------------------------------- a worker's side


class WorkerState:
    """What a worker keeps between tasks: the run's config and tasks, the live stack, its budget."""

    def __init__(self, run_dir: Path, index: int, heartbeat: Callable[[str], None] = lambda stage: None):
        from arc_submit.config import load_config
        from arc_submit.data.tasks import load_tasks
        from arc_submit.files import write_json
        from arc_submit.run.pipeline import SHARED_TTFT_SHARE, new_budget, set_threads
        from arc_submit.run.runner import TaskRunner
        from arc_submit.run.stack import open_stack

        config = load_config(str(run_dir / "config.toml"))
        self.tasks = {task.task_id: task for task in load_tasks(run_dir / "challenges.json")}
        set_threads(config)
        heartbeat("starting")
        self.runner = TaskRunner(config, open_stack(config, progress=False, run_dir=run_dir), heartbeat=heartbeat)
        self.budget = new_budget(config)
        if config.ttft.scope == "all" and config.ttft.steps:
            deadline = self.budget.clock() + self.budget.left() * SHARED_TTFT_SHARE if self.budget.seconds else None
            result = self.runner.train_shared(list(self.tasks.values()), deadline)
            if index == 0:
                write_json(run_dir / "shared-ttft.json", result.to_dict())

    def run(self, message: dict) -> TaskRecord:
        """The task of a queue message {"task", "elapsed", "remaining"}; RunStopped on a code error."""
        from arc_submit.run.pipeline import record_costs
        from arc_submit.run.runner import describe

        self.budget.start = self.budget.clock() - message["elapsed"]
        record = self.runner.run_task(self.tasks[message["task"]], self.budget.plan(message["remaining"]))
        record_costs(self.budget, record)
        log.info("%s", describe(record))
        return record


# ----------------------------------------------------------------------------- workers as local processes


def gpu_devices() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (or nvidia-smi counts them)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device.strip() for device in visible.split(",") if device.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def worker_environment(index: int, workers: int, threads: int, gpus: list[str]) -> dict[str, str]:
    """One GPU per worker where there are GPUs; otherwise a share of the CPU cores."""
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    else:
        cores = os.cpu_count() or 1
        per_worker = threads or max(1, cores // workers)
        first = (index * per_worker) % cores
        env["OMP_NUM_THREADS"] = str(per_worker)
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str((first + k) % cores) for k in range(per_worker))
    return env


class LocalExecutor(Executor):
    """Workers as `python -m arc_submit worker` processes: JSON lines on stdin and stdout; everything else
    they print goes to RUN_DIR/workers/worker-N.log."""

    def __init__(self, run_dir: Path, workers: int, threads: int, timeout: float):
        self.run_dir, self.slots, self.threads, self.timeout = run_dir, workers, threads, timeout
        self.gpus = gpu_devices()
        self.processes: dict[int, subprocess.Popen] = {}
        self.buffers: dict[int, bytes] = {}
        self.last_seen: dict[int, float] = {}
        self.selector = selectors.DefaultSelector()
        self.idle: set[int] = set()  # ready workers without a task: their silence is expected
        self.starts = 0

    @property
    def engine_starts(self) -> int:
        return self.starts

    def start(self, slot: int) -> None:
        self._stop(slot)
        command = [sys.executable, "-m", "arc_submit", "worker", "--run-dir", str(self.run_dir), "--index", str(slot)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   env=worker_environment(slot, self.slots, self.threads, self.gpus))
        self.processes[slot], self.buffers[slot], self.last_seen[slot] = process, b"", time.monotonic()
        self.idle.discard(slot)
        self.selector.register(process.stdout, selectors.EVENT_READ, slot)
        self.starts += 1

    def submit(self, slot: int, message: dict) -> None:
        process = self.processes[slot]
        try:
            process.stdin.write((json.dumps(message) + "\n").encode())
            process.stdin.flush()
        except BrokenPipeError:
            pass  # it died: events() reports it
        self.last_seen[slot] = time.monotonic()
        self.idle.discard(slot)

    def events(self, timeout: float) -> list[Event]:
        found = []
        for key, _ in self.selector.select(timeout):
            slot = key.data
            chunk = os.read(key.fileobj.fileno(), 1 << 20)
            if not chunk:
                code = self.processes[slot].wait()
                self.selector.unregister(key.fileobj)
                found.append(Event(slot, "died", f"exit code {code}"))
                continue
            self.last_seen[slot] = time.monotonic()
            *lines, self.buffers[slot] = (self.buffers[slot] + chunk).split(b"\n")
            for line in lines:
                message = json.loads(line)
                kind = next(iter(message))
                found.append(Event(slot, kind, message[kind]))
                if kind in ("ready", "record"):
                    self.idle.add(slot)
        now = time.monotonic()
        for slot, process in list(self.processes.items()):
            if slot not in self.idle and process.poll() is None and now - self.last_seen[slot] > self.timeout:
                self._stop(slot)
                found.append(Event(slot, "hung", f"silent for {self.timeout:.0f} s"))
        return [event for event in found if event.kind != "heartbeat"]

    def _stop(self, slot: int) -> None:
        process = self.processes.pop(slot, None)
        if process is None:
            return
        try:
            self.selector.unregister(process.stdout)
        except (KeyError, ValueError):
            pass
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            stream.close()

    def close(self) -> None:
        for slot in list(self.processes):
            process = self.processes[slot]
            try:
                process.stdin.write(b'{"stop": true}\n')
                process.stdin.flush()
                process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                pass
            self._stop(slot)
        self.selector.close()


def make_executor(kind: str, run_dir: Path, workers: int, threads: int, timeout: float,
                  ray_address: str | None = None) -> Executor:
    """The executor named by --executor: local processes, or actors on a Ray cluster."""
    if kind == "ray":
        from arc_submit.run.ray_executor import RayExecutor

        return RayExecutor(run_dir, workers, threads, timeout, ray_address)
    return LocalExecutor(run_dir, workers, threads, timeout)
