"""`python -m arc_submit report RUN_DIR [--out FILE]`: RUN_DIR/report.html, one self-contained page."""

from __future__ import annotations

import argparse
from pathlib import Path

from arc_submit.files import write_text
from arc_submit.studies.report import build_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run dir written by `python -m arc_submit run`")
    parser.add_argument("--out", help="the HTML file to write (default RUN_DIR/report.html)")


def main(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "report.html"
    write_text(out, build_report(run_dir))
    print(f"wrote {out}")
    return 0
