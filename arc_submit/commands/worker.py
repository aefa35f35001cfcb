"""`python -m arc_submit worker --run-dir DIR --index N`: one worker of `--workers`, started by the run's
own process (not by hand). It opens the live stack once, then runs the tasks it is handed on stdin and
answers on stdout, one JSON object per line (ready, heartbeat, record, error); everything else it prints
goes to DIR/workers/worker-N.log (see arc_submit.run.queue)."""

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, help="the run dir the parent prepared")
    parser.add_argument("--index", type=int, required=True, help="which worker (from 0)")


def main(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    send = _protocol(run_dir / "workers" / f"worker-{args.index + 1}.log")
    try:
        runner, tasks, budget = _start(run_dir, args.index, send)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the run
        logging.getLogger("arc_submit").debug("%s", traceback.format_exc())
        send({"error": f"cannot start: {type(error).__name__}: {error}"})
        return 4
    send({"ready": True})
    from arc_submit.run.pipeline import record_costs
    from arc_submit.run.runner import RunStopped, describe

    for line in sys.stdin:
        message = json.loads(line)
        if message.get("stop"):
            break
        budget.start = budget.clock() - message["elapsed"]
        task = tasks[message["task"]]
        try:
            record = runner.run_task(task, budget.plan(message["remaining"]))
        except RunStopped as error:
            send({"error": str(error)})
            return 4
        record_costs(budget, record)
        logging.getLogger("arc_submit").info("%s", describe(record))
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


def _start(run_dir: Path, index: int, send):
    """The run's config and tasks from the run dir, the stack, and the shared adapter of scope 'all'."""
    from arc_submit.config import load_config
    from arc_submit.data.tasks import load_tasks
    from arc_submit.files import write_json
    from arc_submit.run.pipeline import SHARED_TTFT_SHARE, new_budget, set_threads
    from arc_submit.run.runner import TaskRunner
    from arc_submit.run.stack import open_stack

    config = load_config(str(run_dir / "config.toml"))
    tasks = {task.task_id: task for task in load_tasks(run_dir / "challenges.json")}
    set_threads(config)
    send({"heartbeat": "starting"})
    stack = open_stack(config, progress=False, run_dir=run_dir)
    runner = TaskRunner(config, stack, heartbeat=lambda stage: send({"heartbeat": stage}))
    budget = new_budget(config)
    if config.ttft.scope == "all" and config.ttft.steps:
        deadline = budget.clock() + budget.left() * SHARED_TTFT_SHARE if budget.seconds else None
        result = runner.train_shared(list(tasks.values()), deadline)
        if index == 0:
            write_json(run_dir / "shared-ttft.json", result.to_dict())
    return runner, tasks, budget
