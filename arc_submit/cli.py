"""The `python -m arc_submit` commands: thin functions that parse flags and call the library.

    python -m arc_submit --help
    python -m arc_submit validate --challenges challenges.json --submission submission.json

Each command is `add_<name>_arguments(parser)` plus `<name>_command(args) -> exit code`, listed in
COMMANDS. Heavy packages (torch, vLLM) are imported only inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arc_submit.errors import UserError


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def print_json_line(data: dict) -> None:
    """The machine-readable result: the last line of stdout, one JSON object."""
    print(json.dumps(data), flush=True)


def _read(path: str) -> object:
    from arc_submit.files import read_json

    return read_json(path)


# ----------------------------------------------------------------------------- validate


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--challenges", required=True, help="Kaggle challenges file, or a folder of task JSON")
    parser.add_argument("--submission", help="a submission.json to check against the challenges")


def validate_command(args: argparse.Namespace) -> int:
    """Exit 0 when the challenges (and the submission) are valid; else one line per problem, exit 1."""
    from arc_submit.submission import submission_problems, test_counts
    from arc_submit.tasks import load_tasks

    try:
        tasks = load_tasks(args.challenges)
    except UserError as error:
        return _report_invalid(error.problems, args.challenges)
    if args.submission is None:
        print(f"valid: {args.challenges}: {len(tasks)} tasks, {sum(len(t.test) for t in tasks)} test inputs")
        return 0
    try:
        problems = submission_problems(_read(args.submission), test_counts(tasks), args.submission)
    except UserError as error:
        problems = error.problems
    if problems:
        return _report_invalid(problems, args.submission)
    print(f"valid: {args.submission}: {len(tasks)} tasks match {args.challenges}")
    return 0


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (" ..." if len(names) > shown else "")


def _report_invalid(problems: list[str], source: str) -> int:
    for line in problems:
        print(line)
    print(f"invalid: {source}: {len(problems)} problem{'s' * (len(problems) != 1)}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------- score and metrics


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submission", required=True, help="the submission.json to score")
    parser.add_argument("--solutions", required=True, help="solutions file {task_id: [grid, ...]}")
    parser.add_argument("--per-task", action="store_true", help="also print each task's score")


def _load_solutions(path: str) -> dict:
    from arc_submit.tasks import parse_solutions

    return parse_solutions(_read(path), path)


def score_command(args: argparse.Namespace) -> int:
    """Print the official score; the last line of stdout is a JSON object with `score`."""
    from arc_submit.metrics import score
    from arc_submit.submission import entry_problems

    solutions = _load_solutions(args.solutions)
    submission = _read(args.submission)
    if not isinstance(submission, dict):
        return _report_invalid([f"{args.submission}: is not an object of task id -> entries"], args.submission)
    problems = [
        f"{args.submission}: task {task_id}: {problem}"
        for task_id, truths in solutions.items() if task_id in submission
        for problem in entry_problems(submission[task_id], len(truths))
    ]
    if problems:
        return _report_invalid(problems, args.submission)
    missing = [task_id for task_id in solutions if task_id not in submission]
    extra = [task_id for task_id in submission if task_id not in solutions]
    if missing:
        print(f"warning: {args.submission}: {len(missing)} tasks missing, scored 0: {_some(missing)}", file=sys.stderr)
    if extra:
        print(f"warning: {args.submission}: {len(extra)} tasks not in the solutions, ignored: {_some(extra)}",
              file=sys.stderr)
    result = score(submission, solutions)
    per_task = result.pop("per_task")
    if args.per_task:
        for task_id, value in per_task.items():
            print(f"{task_id} {value:.4f}")
    print(f"score {result['score']:.4f}: {result['test_outputs_correct']}/{result['test_outputs']} test outputs, "
          f"{result['tasks_solved']}/{result['tasks']} tasks solved")
    print_json_line(result)
    return 0


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions file {task_id: [[grid, ...], ...]}")
    parser.add_argument("--solutions", required=True, help="solutions file {task_id: [grid, ...]}")


def metrics_command(args: argparse.Namespace) -> int:
    """Print the research metrics; the last line of stdout is a JSON object."""
    from arc_submit.metrics import metric_names, research_metrics
    from arc_submit.submission import predictions_problems

    solutions = _load_solutions(args.solutions)
    predictions = _read(args.predictions)
    counts = {task_id: len(grids) for task_id, grids in solutions.items()}
    problems = predictions_problems(predictions, counts, args.predictions)
    if problems:
        return _report_invalid(problems, args.predictions)
    missing = [task_id for task_id in solutions if task_id not in predictions]
    if missing:
        print(f"warning: {args.predictions}: {len(missing)} tasks have no predictions, counted unanswered: "
              f"{_some(missing)}", file=sys.stderr)
    result = research_metrics(predictions, solutions)
    result.pop("per_task")
    print("  ".join(f"{name} {result[name]:.4f}" for name in metric_names()))
    print_json_line(result)
    return 0


# ----------------------------------------------------------------------------- data


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.tasks import DATASETS

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write an embedded dataset in Kaggle layout")
    export.add_argument("--dataset", required=True, choices=list(DATASETS), help="embedded dataset")
    export.add_argument("--out", required=True, help="folder for challenges.json and solutions.json")
    export.add_argument("--limit", type=positive_int, help="export at most this many tasks")
    export.add_argument("--smallest", action="store_true", help="with --limit: the tasks with the fewest cells")


def data_command(args: argparse.Namespace) -> int:
    from arc_submit.files import write_json
    from arc_submit.tasks import kaggle_layout, load_dataset, smallest

    tasks = load_dataset(args.dataset)
    tasks = smallest(tasks, args.limit) if args.smallest else tasks[: args.limit]
    challenges, solutions = kaggle_layout(tasks)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    write_json(out / "challenges.json", challenges)
    write_json(out / "solutions.json", solutions)
    print(f"wrote {len(tasks)} tasks of {args.dataset} to {out / 'challenges.json'} and {out / 'solutions.json'}")
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


# ----------------------------------------------------------------------------- dispatch

COMMANDS: dict[str, Command] = {
    "validate": Command("check a challenges file, and a submission against it", add_validate_arguments,
                        validate_command),
    "score": Command("the official score of a submission", add_score_arguments, score_command),
    "metrics": Command("the research metrics of a predictions file", add_metrics_arguments, metrics_command),
    "data": Command("embedded ARC datasets: export them in Kaggle layout", add_data_arguments, data_command),
}
DEFAULT_COMMAND = "run"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arc_submit",
        description="arc-submit: turn a language model into an ARC Prize submission, offline.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if DEFAULT_COMMAND in COMMANDS and (not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, DEFAULT_COMMAND)
    args = make_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        for line in error.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
