"""`python -m arc_submit [run] --seed N ...`: the whole pipeline (the default command); prints a summary,
and the last line of stdout is a JSON object.

Exit status: 0 every task ran as planned; 3 some tasks degraded (a resource failure, or the time budget
spent: the summary names them and why; the submission is valid); 4 the run stopped on a configuration
or code error (one line here, the traceback in run.log; the submission is valid, with fallbacks);
2 an error in what was given (a flag, a file).

    python -m arc_submit --config smoke --dataset arc-agi-2-eval --smallest 2
"""

from __future__ import annotations

import argparse
import os
import logging
import sys
import traceback
from pathlib import Path

from arc_submit.commands.common import log_to, positive_int, print_json_line
from arc_submit.errors import UserError
from arc_submit.run.runner import RunStopped

log = logging.getLogger("arc_submit")

LOCAL_DATASET = "arc-agi-1-eval"
LOCAL_TASKS = 8  # the smallest tasks of LOCAL_DATASET that the `cpu` preset runs within 30 minutes here
DEFAULT_PRESET = "cpu"
EXIT_DEGRADED = 3
EXIT_STOPPED = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.data.tasks import DATASETS

    parser.add_argument("--seed", type=int, help="drives every random choice (default 0)")
    parser.add_argument("--config", default=DEFAULT_PRESET, help=f"preset name or TOML file (default {DEFAULT_PRESET})")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--challenges", help="Kaggle challenges file, or a folder of per-task JSON")
    source.add_argument("--dataset", choices=list(DATASETS), help="an embedded dataset (solutions included)")
    parser.add_argument("--smallest", type=positive_int, help="with --dataset: only the N tasks with fewest cells")
    parser.add_argument("--solutions", help="solutions file: metrics.json and the score are written when given")
    parser.add_argument("--model", help="alias, transformers folder or LoRA adapter folder (default smollm2-135m)")
    parser.add_argument("--output", help="also write the submission here (e.g. /kaggle/working/submission.json)")
    parser.add_argument("--run-dir", help="where records and outputs go; rerunning it resumes (default runs/CONFIG-seedN, "
                        "e.g. runs/cpu-seed0)")
    parser.add_argument("--limit", type=positive_int, help="run only the first N tasks")
    parser.add_argument("--time-budget", type=float, help="seconds for the whole run; work is cut to end in time")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override any setting, e.g. --set ttft.steps=8 (repeatable)")
    parser.add_argument("--shard", help="run only share i of n of the tasks (i/n, e.g. 1/4); merge the run dirs after")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="a work queue over N worker processes (one per GPU when there are GPUs); each "
                             "worker's log is RUN_DIR/workers/worker-N.log")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="where --workers run: local processes (default) or actors on a Ray cluster")
    parser.add_argument("--ray-address", help="with --executor ray: the cluster (e.g. auto); default: a local Ray")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.epilog = (f"Without --challenges or --dataset: the {LOCAL_TASKS} smallest tasks of {LOCAL_DATASET}, "
                     "as `make local-submission` runs them.")


def run_tasks_from_args(args: argparse.Namespace):
    """The tasks a run command works on, with their solutions when known."""
    from arc_submit.data.tasks import load_dataset, load_tasks, smallest

    if args.challenges:
        if args.smallest:
            raise UserError("--smallest works with --dataset; for a challenges file use --limit")
        return load_tasks(args.challenges, args.solutions)
    if args.solutions:
        raise UserError("--solutions needs --challenges (embedded datasets bring their own)")
    if args.dataset:
        tasks = load_dataset(args.dataset)
        return smallest(tasks, args.smallest) if args.smallest else tasks
    return smallest(load_dataset(LOCAL_DATASET), LOCAL_TASKS)


def main(args: argparse.Namespace) -> int:
    """The whole pipeline; prints a summary, and the last line of stdout is a JSON object."""
    from arc_submit.config import load_config
    from arc_submit.run.pipeline import run_pipeline
    from arc_submit.run.shards import parse_shard

    config = load_config(args.config, args.set, **{
        "run.seed": args.seed, "model.name": args.model, "run.limit": args.limit, "run.time_budget": args.time_budget,
    })
    shard = parse_shard(args.shard) if args.shard else None
    if shard and args.workers > 1:
        raise UserError("--shard and --workers: choose one (--workers makes its own shards)")
    if args.ray_address and args.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    tasks = run_tasks_from_args(args)
    name = Path(args.config).stem
    run_dir = Path(args.run_dir or f"runs/{name}-seed{config.run.seed}")
    output = Path(args.output) if args.output else None
    log_to(run_dir)
    if os.environ.get("KAGGLE_IS_COMPETITION_RERUN") and config.run.on_error != "degrade":
        config.run.on_error = "degrade"  # nobody watches the scoring rerun: an error costs its task only
        log.info("KAGGLE_IS_COMPETITION_RERUN is set: run.on_error = degrade")
    try:
        summary = run_pipeline(config, tasks, run_dir, output, progress=not args.quiet, shard=shard,
                               workers=args.workers, executor=args.executor, ray_address=args.ray_address)
    except RunStopped as error:
        return _stopped(str(error), run_dir)
    except UserError:
        raise
    except OSError as error:  # a full disk, above all: the files written before stay valid
        where = f"cannot write {error.filename}: " if error.filename else ""
        return _stopped(f"{where}{error.strerror or error}", run_dir)
    except Exception as error:  # noqa: BLE001 - a bug outside any task (engine start, ...): one line, then stop
        log.debug("%s", traceback.format_exc())
        return _stopped(f"{type(error).__name__}: {error} (the traceback is in run.log)", run_dir)
    return _report(summary)


def _stopped(message: str, run_dir: Path) -> int:
    log.debug("run stopped: %s", message)
    print(f"error: the run stopped: {message}", file=sys.stderr)
    print(f"the submission in {run_dir} is valid, with fallback attempts for the tasks not run", file=sys.stderr)
    print_json_line({"stopped": message, "exit_code": EXIT_STOPPED})
    return EXIT_STOPPED


def _report(summary: dict) -> int:
    """The summary on the console; the exit status says whether any task degraded."""
    print(f"submission: {summary['submission']} ({summary['tasks']} tasks, modes {summary['modes']})")
    if summary["unparsed"]:
        print("unparsed answers: " + ", ".join(f"{count} {kind}" for kind, count in summary["unparsed"].items()))
    if summary["no_answer"]:
        no_answer = summary["no_answer"]
        shown = ", ".join(list(no_answer)[:10]) + (", ..." if len(no_answer) > 10 else "")
        print(f"no answer parsed for {sum(map(len, no_answer.values()))} test inputs of {len(no_answer)} tasks "
              f"(fallback attempts there): {shown}")
    if "metrics" in summary:
        metrics = summary["metrics"]
        print(f"score {metrics['score']:.4f}  " + "  ".join(
            f"{name} {metrics[name]:.3f}" for name in ("pass_n", "vote_1", "vote_2", "accuracy", "unanswered")))
    degraded = summary["degraded"]
    if degraded:
        print(f"WARNING: {len(degraded)} tasks degraded (the submission is valid; see run.log):", file=sys.stderr)
        for task_id, reason in degraded.items():
            print(f"  {task_id}: {reason}", file=sys.stderr)
    summary["exit_code"] = EXIT_DEGRADED if degraded else 0
    print_json_line(summary)
    return summary["exit_code"]
