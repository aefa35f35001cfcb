"""`python -m arc_submit merge RUN_DIR [RUN_DIR ...] --run-dir OUT [--output FILE]`: join the run dirs of
shards (`--shard i/n`) into one run dir and one submission; the last line of stdout is JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from arc_submit.commands.common import print_json_line
from arc_submit.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", help="run dirs of shards of one run (--shard i/n)")
    parser.add_argument("--run-dir", required=True, help="the merged run dir (submission, predictions, metrics)")
    parser.add_argument("--output", help="also write the merged submission here")


def main(args: argparse.Namespace) -> int:
    """Join shard run dirs into one run dir and one submission; the last line of stdout is JSON."""
    from arc_submit.run.shards import merge_run_dirs

    sources = [Path(d) for d in args.run_dirs]
    missing = [str(d) for d in sources if not d.is_dir()]
    if missing:
        raise UserError(f"{missing[0]}: no such run dir")
    summary = merge_run_dirs(sources, Path(args.run_dir), Path(args.output) if args.output else None)
    print(f"merged {summary['merged']} of {summary['tasks']} tasks into {args.run_dir}")
    print_json_line(summary)
    return 0
