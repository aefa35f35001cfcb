"""The run flags that evaluate and variability pass on to each run they start (solutions are needed to
score)."""

from __future__ import annotations

import argparse

from arc_submit.commands.common import positive_int
from arc_submit.errors import UserError


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The run flags an evaluation passes on to each run (solutions are needed to score)."""
    from arc_submit.data.tasks import DATASETS

    parser.add_argument("--config", default="cpu", help="preset name or TOML file (default cpu)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=list(DATASETS), help="an embedded dataset (solutions included)")
    source.add_argument("--challenges", help="Kaggle challenges file (needs --solutions)")
    parser.add_argument("--solutions", help="solutions file for --challenges")
    parser.add_argument("--smallest", type=positive_int, help="with --dataset: only the N tasks with fewest cells")
    parser.add_argument("--limit", type=positive_int, help="run only the first N tasks")
    parser.add_argument("--no-ttft", action="store_true", help="evaluate the frozen model (ttft.steps = 0)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override any setting (repeatable)")
    parser.add_argument("--time-budget", type=float, default=0.0,
                        help="seconds per run (default 0: none, so that no task is cut and rows compare models, "
                             "not machine load; a preset's own budget is not used)")
    parser.add_argument("--out", help="folder for the runs, the table and the plot")
    add_executor_arguments(parser)


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the runs of a study go: one after another here, or side by side on a Ray cluster."""
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: runs on this machine (default); ray: the runs side by side on a Ray cluster")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="local: this many runs side by side, each on its share of the cores (default 1)")
    parser.add_argument("--ray-address", help="with --executor ray: the cluster (e.g. auto); default: a local Ray")


def run_flags(args: argparse.Namespace) -> list[str]:
    if args.challenges and not args.solutions:
        raise UserError("--challenges needs --solutions here: an evaluation scores against them")
    flags = ["--config", args.config, "--quiet", "--time-budget", str(args.time_budget)]
    if args.dataset:
        flags += ["--dataset", args.dataset] + (["--smallest", str(args.smallest)] if args.smallest else [])
    else:
        flags += ["--challenges", args.challenges, "--solutions", args.solutions]
    flags += ["--limit", str(args.limit)] if args.limit else []
    for setting in args.set + (["ttft.steps=0"] if args.no_ttft else []):
        flags += ["--set", setting]
    return flags


