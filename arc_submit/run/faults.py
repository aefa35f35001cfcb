"""Fault injection, for tests of what a run survives: ARC_SUBMIT_FAULTS="STAGE:TASK_ID:KIND[,...]" makes
that stage of that task fail when it starts, in any process of the run (workers included).

    ARC_SUBMIT_FAULTS="ttft:00576224:oom,sampling:66e6c45b:error" python -m arc_submit ...

Stages: task (before anything), ttft, sampling. Kinds: oom (out of memory: degrades the task), error (a
code error: stops the run), kill (the process dies with SIGKILL), hang (the process stops answering).
"""

from __future__ import annotations

import os
import signal
import time

VARIABLE = "ARC_SUBMIT_FAULTS"
STAGES = ("task", "ttft", "sampling")
KINDS = ("oom", "error", "kill", "hang")


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
    if kind == "oom":
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory (injected in {stage} of task {task_id})")
    if kind == "error":
        raise ValueError(f"injected code error in {stage} of task {task_id}")
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        while True:
            time.sleep(3600)
