"""Executors: what runs the work queue's workers. The seam (`Executor`, and the `Event`s it reports), then
its two kinds: `LocalExecutor` (worker processes on this machine, one per GPU or a share of the CPU
cores) and `RayExecutor` (one actor per GPU on a Ray cluster). An executor starts, feeds and watches
workers; which task goes where is the driver's (arc_submit.run.queue).

    python -m arc_submit --workers 4 ...                    # local: worker logs in RUN_DIR/workers/worker-N.log
    python -m arc_submit --executor ray --workers 4 ...     # a local Ray instance (or --ray-address)

Imports, inside run/: worker (for Ray's actors; local workers are `python -m arc_submit worker`), never
the queue's driver or the pipeline. Ray restarts an actor that dies and retries its call once
(`max_restarts`, `max_task_retries`); an actor silent for `run.worker_timeout` seconds (heartbeats go to
a small board actor) is killed, which Ray answers the same way.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from arc_submit.errors import UserError

# ----------------------------------------------------------------------------- the seam


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
    """Runs `slots` workers, each holding a session, taking one task at a time."""

    slots: int

    @abstractmethod
    def start(self, slot: int) -> None:
        """Start (or restart) the worker of a slot; it reports `ready` when it can take tasks."""

    @abstractmethod
    def submit(self, slot: int, message: dict) -> None:
        """Hand a task to a ready worker: {"task": id, "elapsed": s, "remaining": n, "queued": [ids],
        "running": [ids], "workers": n, "meter": the driver's costs} (arc_submit.run.budget.plan_message)."""

    @abstractmethod
    def events(self, timeout: float) -> list[Event]:
        """What happened since the last call, waiting up to `timeout` seconds for something."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def engine_starts(self) -> int:
        return 0


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


# Workers start together: each vLLM engine gets ports from a range of its own (vLLM counts up from VLLM_PORT to
# the first free port; without it, two engines that ask the system for a free port at once can be handed the
# same one before either binds it), and a compile cache folder of its own (vLLM's, under VLLM_CACHE_ROOT:
# two engines compiling the same graph would write the same files). A restarted worker takes its slot's.
WORKER_PORTS = 29600
PORTS_PER_WORKER = 100


def engine_environment(index: int, environ: Mapping[str, str]) -> dict[str, str]:
    """Worker `index`'s own ports and compile cache, from the run's (see WORKER_PORTS): for a worker process
    and for a Ray actor alike, and the same for a restarted one."""
    cache = environ.get("VLLM_CACHE_ROOT") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.expanduser(os.path.join("~", ".cache")), "vllm")
    return {"VLLM_PORT": str(int(environ.get("VLLM_PORT") or WORKER_PORTS) + index * PORTS_PER_WORKER),
            "VLLM_CACHE_ROOT": os.path.join(cache, f"worker-{index}")}


def worker_environment(index: int, workers: int, threads: int, gpus: list[str]) -> dict[str, str]:
    """One GPU per worker where there are GPUs; and a share of the CPU cores for each worker's threads
    (pinned for vLLM's CPU build when there is no GPU); its own ports and compile cache (see WORKER_PORTS)."""
    env = dict(os.environ) | engine_environment(index, os.environ)
    cores = os.cpu_count() or 1
    per_worker = threads or max(1, cores // workers)
    env["OMP_NUM_THREADS"] = str(per_worker)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    else:
        first = (index * per_worker) % cores
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str((first + k) % cores) for k in range(per_worker))
    return env


def check_gpu_workers(workers: int, gpus: list[str]) -> None:
    """UserError when there are GPUs but fewer than workers: two engines on one GPU would each take
    their share of its memory as if alone."""
    if gpus and workers > len(gpus):
        raise UserError(f"--workers {workers}: this machine has {len(gpus)} GPU(s) ({', '.join(gpus)}); a worker "
                        f"takes a whole GPU: use --workers {len(gpus)} or fewer")


class LocalExecutor(Executor):
    """Workers as `python -m arc_submit worker` processes: JSON lines on stdin and stdout; everything else
    they print goes to RUN_DIR/workers/worker-N.log."""

    def __init__(self, run_dir: Path, workers: int, threads: int, timeout: float):
        self.run_dir, self.slots, self.threads, self.timeout = run_dir, workers, threads, timeout
        self.gpus = gpu_devices()
        check_gpu_workers(workers, self.gpus)
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
        log = self.run_dir / "workers" / f"worker-{slot + 1}.log"  # from its first line: a crash at import too
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as stderr:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
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
            try:
                stream.close()
            except BrokenPipeError:  # a stop message still buffered for a worker that is gone
                pass

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


# ----------------------------------------------------------------------------- workers as Ray actors

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
    """A GPU per actor when the cluster has GPUs (refused when it has fewer than workers: the extra actors
    would wait for a GPU forever), else a share of its CPU cores."""
    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        check_gpu_workers(workers, [str(i) for i in range(int(resources["GPU"]))])
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": threads or max(1, int(resources.get("CPU", 1)) // workers)}


class _Board:
    """How many times each slot's actor said something (stage or training step): counts, not times, so
    that the driver stamps them with its own clock (the actors' machines may keep another time)."""

    def __init__(self):
        self.counts: dict[int, int] = {}

    def beat(self, slot: int) -> None:
        self.counts[slot] = self.counts.get(slot, 0) + 1

    def last(self) -> dict[int, int]:
        return dict(self.counts)


class _TaskActor:
    """A worker as a Ray actor: the session, then one task per call."""

    def __init__(self, run_dir: str, index: int, board):
        import logging

        from arc_submit.run.worker import WorkerState

        handler = logging.FileHandler(Path(run_dir) / "workers" / f"ray-worker-{index + 1}.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger("arc_submit")
        logger.setLevel(logging.DEBUG)
        logger.handlers[:] = [handler]
        logger.propagate = False
        self.slot, self.board, self.last = index, board, 0.0
        os.environ.update(engine_environment(index, os.environ))  # actors of one node start together too
        logger.info("worker %d: vLLM ports from %s, compile cache %s", index + 1, os.environ["VLLM_PORT"],
                    os.environ["VLLM_CACHE_ROOT"])
        self.state = WorkerState(Path(run_dir), index, heartbeat=self.heartbeat)

    def heartbeat(self, stage: str) -> None:
        if time.monotonic() - self.last >= 1.0:
            self.last = time.monotonic()
            self.board.beat.remote(self.slot)

    def ready(self) -> int:
        return os.getpid()

    def run(self, message: dict) -> dict:
        import logging

        from arc_submit.errors import EngineBroken
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
        self.busy_since: dict[int, float] = {}  # on the driver's clock: since the slot's last call or beat
        self.counted: dict[int, int] = {}  # the beats of each slot seen so far
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
        self.busy_since[slot] = time.monotonic()
        self.starts += 1

    def submit(self, slot: int, message: dict) -> None:
        self.pending[self.actors[slot].run.remote(message)] = (slot, "run")
        self.busy_since[slot] = time.monotonic()

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
        counts = self.ray.get(self.board.last.remote())
        now = time.monotonic()
        for slot, since in list(self.busy_since.items()):
            if counts.get(slot, 0) != self.counted.get(slot, 0):  # it beat since the last look: stamp it now
                self.counted[slot] = counts.get(slot, 0)
                self.busy_since[slot] = now
            elif now - since > self.timeout and slot in self.actors:
                self.ray.kill(self.actors[slot], no_restart=False)
                self.busy_since[slot] = now

    def close(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        self.ray.kill(self.board, no_restart=True)


def make_executor(kind: str, run_dir: Path, workers: int, threads: int, timeout: float,
                  ray_address: str | None = None) -> Executor:
    """The executor named by --executor: local processes, or actors on a Ray cluster."""
    if kind == "ray":
        return RayExecutor(run_dir, workers, threads, timeout, ray_address)
    return LocalExecutor(run_dir, workers, threads, timeout)
