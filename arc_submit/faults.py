"""Fault injection, for tests of what a run survives: ARC_SUBMIT_FAULTS="STAGE:NAME:KIND[,...]" makes that
stage fail when it starts for that task (or, for `write`, when that file is written), in any process of
the run (workers included).

    ARC_SUBMIT_FAULTS="ttft:00576224:oom,sampling:66e6c45b:error" python -m arc_submit ...
    ARC_SUBMIT_FAULTS="task:00576224:kill-once" ARC_SUBMIT_FAULTS_MARKS=/tmp/marks python -m arc_submit --workers 2 ...

Stages: task (before anything), ttft, sampling, scoring, write (NAME is a file name), train (NAME is a
step). Kinds: oom (out of memory: degrades the task), error (a code error: stops the run, or with
run.on_error = degrade costs its task), kill (the process dies with SIGKILL), hang (the process stops
answering), full (the disk is full), engine (the sampling engine broke: the worker exits and is
replaced). error-once, kill-once, hang-once and engine-once fire only the first time: a mark is left in
the folder ARC_SUBMIT_FAULTS_MARKS.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

from arc_submit.errors import EngineBroken

VARIABLE = "ARC_SUBMIT_FAULTS"
MARKS = "ARC_SUBMIT_FAULTS_MARKS"
STAGES = ("task", "ttft", "sampling", "scoring", "write", "train")
KINDS = ("oom", "error", "kill", "hang", "full", "engine", "error-once", "kill-once", "hang-once", "engine-once")


def planned() -> dict[tuple[str, str], str]:
    """(stage, task id) -> kind, from the environment; ValueError naming a malformed entry."""
    faults = {}
    for entry in filter(None, (part.strip() for part in os.environ.get(VARIABLE, "").split(","))):
        stage, _, rest = entry.partition(":")
        task_id, _, kind = rest.rpartition(":")
        if stage not in STAGES or kind not in KINDS or not task_id:
            raise ValueError(f"{VARIABLE}: {entry!r} is not STAGE:TASK_ID:KIND with a stage of {STAGES} and a kind of {KINDS}")
        faults[(stage, task_id)] = kind
    return faults


def inject(stage: str, task_id: str) -> None:
    """Fail here when a fault is planned for this stage of this task."""
    if VARIABLE not in os.environ:
        return
    kind = planned().get((stage, task_id))
    if kind is not None and kind.endswith("-once"):
        mark = Path(os.environ[MARKS]) / f"{stage}-{task_id}-{kind}"
        if mark.exists():
            return
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
        kind = kind.removesuffix("-once")
    if kind == "oom":  # the message torch's CUDA allocator gives (torch itself is not imported here)
        raise RuntimeError(f"CUDA out of memory. Tried to allocate 2.00 GiB (injected in {stage} of task {task_id})")
    if kind == "error":
        raise ValueError(f"injected code error in {stage} of task {task_id}")
    if kind == "engine":
        raise EngineBroken(f"the engine is not used again after generate failed (injected in {stage} of task {task_id})")
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        while True:
            time.sleep(3600)


def inject_write(name: str) -> None:
    """Fail like a full disk while the file `name` is being written, when planned."""
    if VARIABLE in os.environ and planned().get(("write", name)) == "full":
        raise OSError(errno.ENOSPC, "No space left on device (injected)")
