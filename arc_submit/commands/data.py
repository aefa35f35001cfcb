"""`python -m arc_submit data export --dataset NAME --out DIR [--smallest N] [--limit N]`: an embedded
dataset as challenges.json and solutions.json in Kaggle layout.

    python -m arc_submit data export --dataset arc-agi-2-eval --smallest 2 --out data/two
"""

from __future__ import annotations

import argparse
from pathlib import Path

from arc_submit.commands.common import positive_int
from arc_submit.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.data.tasks import DATASETS

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write an embedded dataset in Kaggle layout")
    export.add_argument("--dataset", required=True, choices=list(DATASETS), help="embedded dataset")
    export.add_argument("--out", required=True, help="folder for challenges.json and solutions.json")
    export.add_argument("--limit", type=positive_int, help="export at most this many tasks")
    export.add_argument("--smallest", type=positive_int, nargs="?", const=0, metavar="N",
                        help="the N tasks with the fewest cells, as in every command (the older `--smallest --limit "
                             "N` says the same)")


def main(args: argparse.Namespace) -> int:
    from arc_submit.data.tasks import kaggle_layout, load_dataset, smallest
    from arc_submit.files import write_json

    tasks = load_dataset(args.dataset)
    if args.smallest is not None:
        counts = [count for count in (args.smallest, args.limit) if count]
        tasks = smallest(tasks, min(counts) if counts else None)
    else:
        tasks = tasks[: args.limit]
    challenges, solutions = kaggle_layout(tasks)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    write_json(out / "challenges.json", challenges)
    write_json(out / "solutions.json", solutions)
    print(f"wrote {len(tasks)} tasks of {args.dataset} to {out / 'challenges.json'} and {out / 'solutions.json'}")
    return 0
