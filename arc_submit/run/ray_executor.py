"""The work queue on a Ray cluster: one actor per GPU (or per share of CPU cores), each holding its live
stack and taking the next task when free; the driver writes records and the submission as results
arrive, as with local workers. Ray restarts an actor that dies and retries its call once
(`max_restarts`, `max_task_retries`); a call that still fails marks its task failed, as locally. An
actor silent for `run.worker_timeout` seconds (heartbeats go to a small board actor) is killed, which Ray
answers the same way.

    python -m arc_submit --executor ray --workers 4 ...                  # a local Ray instance
    python -m arc_submit --executor ray --ray-address auto --workers 8 ... # a cluster (`ray start --head`)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from arc_submit.errors import UserError
from arc_submit.run.queue import Event, Executor

INSTALL = "the Ray executor needs Ray: pip install 'arc-submit[ray]' (or: pip install 'ray>=2.40')"
PASSED_ON = ("ARC_SUBMIT_", "HF_", "TRANSFORMERS_", "VLLM_")  # variables the actors get from the driver


def connect(address: str | None = None):
    """The ray module, connected: to `address`, to a Ray instance this process already joined, or to a
    new local one (no dashboard)."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray: {INSTALL}") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": passed_environment()})
    return ray


def passed_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith(PASSED_ON)}


def actor_resources(ray, workers: int, threads: int) -> dict:
    """A GPU per actor when the cluster has GPUs, else a share of its CPU cores."""
    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": threads or max(1, int(resources.get("CPU", 1)) // workers)}


class _Board:
    """When each slot's actor last said something (stage or training step)."""

    def __init__(self):
        self.seen: dict[int, float] = {}

    def beat(self, slot: int) -> None:
        self.seen[slot] = time.time()

    def last(self) -> dict[int, float]:
        return dict(self.seen)


class _TaskActor:
    """A worker as a Ray actor: the live stack, then one task per call."""

    def __init__(self, run_dir: str, index: int, board):
        import logging

        from arc_submit.run.queue import WorkerState

        handler = logging.FileHandler(Path(run_dir) / "workers" / f"ray-worker-{index + 1}.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger("arc_submit")
        logger.setLevel(logging.DEBUG)
        logger.handlers[:] = [handler]
        logger.propagate = False
        self.slot, self.board, self.last = index, board, 0.0
        self.state = WorkerState(Path(run_dir), index, heartbeat=self.heartbeat)

    def heartbeat(self, stage: str) -> None:
        if time.monotonic() - self.last >= 1.0:
            self.last = time.monotonic()
            self.board.beat.remote(self.slot)

    def ready(self) -> int:
        return os.getpid()

    def run(self, message: dict) -> dict:
        import logging

        from arc_submit.predict.backends import EngineBroken
        from arc_submit.run.runner import RunStopped

        try:
            return {"record": self.state.run(message).to_dict(), "pid": os.getpid()}
        except RunStopped as error:
            return {"error": str(error), "pid": os.getpid()}
        except EngineBroken as error:  # the actor dies: Ray restarts it and retries the call, as for a crash
            logging.getLogger("arc_submit").error("task %s: %s; this actor exits", message.get("task"), error)
            os._exit(5)


class RayExecutor(Executor):
    def __init__(self, run_dir: Path, workers: int, threads: int, timeout: float, address: str | None = None):
        self.ray = connect(address)
        self.run_dir, self.slots, self.timeout = run_dir, workers, timeout
        (run_dir / "workers").mkdir(parents=True, exist_ok=True)
        self.options = actor_resources(self.ray, workers, threads)
        self.board = self.ray.remote(_Board).options(num_cpus=0).remote()
        self.actor_class = self.ray.remote(_TaskActor)
        self.actors: dict[int, object] = {}
        self.pending: dict[object, tuple[int, str]] = {}  # object ref -> (slot, "ready" | "run")
        self.pids: dict[int, int] = {}
        self.busy_since: dict[int, float] = {}
        self.starts = 0

    @property
    def engine_starts(self) -> int:
        return self.starts

    def start(self, slot: int) -> None:
        old = self.actors.pop(slot, None)
        if old is not None:
            self.ray.kill(old, no_restart=True)
        actor = self.actor_class.options(max_restarts=1, max_task_retries=1, **self.options).remote(
            str(self.run_dir), slot, self.board)
        self.actors[slot] = actor
        self.pending[actor.ready.remote()] = (slot, "ready")
        self.busy_since[slot] = time.time()
        self.starts += 1

    def submit(self, slot: int, message: dict) -> None:
        self.pending[self.actors[slot].run.remote(message)] = (slot, "run")
        self.busy_since[slot] = time.time()

    def events(self, timeout: float) -> list[Event]:
        found = []
        if self.pending:
            done, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
            for ref in done:
                slot, kind = self.pending.pop(ref)
                found += self._result(ref, slot, kind)
        else:
            time.sleep(timeout)
        self._watch(found)
        return found

    def _result(self, ref, slot: int, kind: str) -> list[Event]:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            value = self.ray.get(ref)
        except (RayActorError, RayTaskError) as error:
            self.busy_since.pop(slot, None)
            return [Event(slot, "lost", f"{type(error).__name__}, after Ray's own restart and retry")]
        self.busy_since.pop(slot, None)
        if kind == "ready":
            self.pids[slot] = value
            return [Event(slot, "ready")]
        events = []
        if value["pid"] != self.pids.get(slot):  # Ray restarted the actor under this call and retried it
            self.starts += 1
            self.pids[slot] = value["pid"]
            events.append(Event(slot, "retried"))
        if "error" in value:
            return events + [Event(slot, "error", value["error"])]
        return events + [Event(slot, "record", value["record"])]

    def _watch(self, found: list[Event]) -> None:
        """Kill the actors silent for longer than the timeout while they work: Ray restarts them and
        retries their call."""
        seen = self.ray.get(self.board.last.remote())
        now = time.time()
        for slot, since in list(self.busy_since.items()):
            if now - max(since, seen.get(slot, 0.0)) > self.timeout and slot in self.actors:
                self.ray.kill(self.actors[slot], no_restart=False)
                self.busy_since[slot] = now

    def close(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        self.ray.kill(self.board, no_restart=True)
