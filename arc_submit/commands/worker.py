"""`python -m arc_submit worker --run-dir DIR --index N`: one worker of `--workers`, started by the run's
own process (not by hand). It opens the session once, then runs the tasks it is handed on stdin and
answers on stdout, one JSON object per line (ready, heartbeat, record, error); everything else it prints
goes to DIR/workers/worker-N.log (see arc_submit.run.queue and arc_submit.run.worker)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

HEARTBEAT_EVERY_S = 1.0
EXIT_ENGINE_BROKEN = 5  # the worker's engine raised: the queue sees it die, restarts it and retries the task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, help="the run dir the parent prepared")
    parser.add_argument("--index", type=int, required=True, help="which worker (from 0)")


def main(args: argparse.Namespace) -> int:
    from arc_submit.errors import EngineBroken
    from arc_submit.run.runner import RunStopped
    from arc_submit.run.worker import WorkerState

    run_dir = Path(args.run_dir)
    send = _protocol(run_dir / "workers" / f"worker-{args.index + 1}.log")
    try:
        worker = WorkerState(run_dir, args.index, heartbeat=lambda stage: send({"heartbeat": stage}))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the run
        logging.getLogger("arc_submit").debug("%s", traceback.format_exc())
        send({"error": f"cannot start: {type(error).__name__}: {error}"})
        return 4
    send({"ready": True})
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("stop"):
            break
        try:
            record = worker.run(message)
        except RunStopped as error:
            send({"error": str(error)})
            return 4
        except EngineBroken as error:  # exit without a record: the queue starts a fresh worker, retries the task
            logging.getLogger("arc_submit").error("task %s: %s; this worker exits", message.get("task"), error)
            return EXIT_ENGINE_BROKEN
        send({"record": record.to_dict()})
    return 0


def _protocol(log_path: Path):
    """A sender of JSON lines on the original stdout; stdout and stderr themselves go to the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    log_file = open(log_path, "a", buffering=1, encoding="utf-8")
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    logger = logging.getLogger("arc_submit")
    logger.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.info("worker started, pid %d", os.getpid())
    last = [0.0]

    def send(message: dict) -> None:
        if "heartbeat" in message:
            if time.monotonic() - last[0] < HEARTBEAT_EVERY_S:
                return
            last[0] = time.monotonic()
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    return send
