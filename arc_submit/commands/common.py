"""What several commands share: the JSON result line, flag types, problem listings, run logging."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from arc_submit.errors import summarize


def print_json_line(data: dict) -> None:
    """The machine-readable result: the last line of stdout, one JSON object."""
    print(json.dumps(data), flush=True)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (" ..." if len(names) > shown else "")


def report_invalid(problems: list[str], source: str) -> int:
    """The problems on stdout, two lines at most (one per kind, with the first place and a count), the
    total on stderr; exit code 1."""
    for line in summarize(problems, most=2):
        print(line)
    print(f"invalid: {source}: {len(problems)} problem{'s' * (len(problems) != 1)}", file=sys.stderr)
    return 1


def load_solutions(path: str) -> dict:
    from arc_submit.data.tasks import parse_solutions
    from arc_submit.files import read_json

    return parse_solutions(read_json(path), path)


class _ConsoleHandler(logging.StreamHandler):
    """Log lines on the console through tqdm, so that they do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own rule: a failing handler must not break the program
            self.handleError(record)


def log_to(run_dir: Path) -> None:
    """The `arc_submit` logger: INFO and above to the console, everything (each task's line and every
    warning included) to RUN_DIR/run.log, appended run after run; Python warnings (the libraries')
    to run.log only."""
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("arc_submit")
    logger.setLevel(logging.DEBUG)
    console = _ConsoleHandler()
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    file = logging.FileHandler(run_dir / "run.log")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [console, file]
    logger.propagate = False
    warnings_to(file)  # libraries' warnings go to run.log, not between the progress bars


class _Counting(logging.FileHandler):
    """A file handler that counts what it wrote."""

    written = 0

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.written += 1


def warnings_to(handler: logging.Handler | Path) -> logging.Handler:
    """Python warnings (the libraries') to `handler`, or to a file there, and not to the console; the handler
    (a file of its own counts what it wrote: `.written`)."""
    if isinstance(handler, Path):
        handler = _Counting(handler)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.captureWarnings(True)
    warnings = logging.getLogger("py.warnings")
    warnings.handlers[:] = [handler]
    warnings.propagate = False
    return handler
