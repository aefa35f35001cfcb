"""`python -m arc_submit score --submission FILE --solutions FILE`: the official score; the last line of
stdout is a JSON object with `score`."""

from __future__ import annotations

import argparse
import sys

from arc_submit.commands.common import load_solutions, print_json_line, some
from arc_submit.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submission", required=True, help="the submission.json to score")
    parser.add_argument("--solutions", required=True, help="solutions file {task_id: [grid, ...]}")
    parser.add_argument("--per-task", action="store_true", help="also print each task's score")


def main(args: argparse.Namespace) -> int:
    """Print the official score; the last line of stdout is a JSON object with `score`."""
    from arc_submit.data.metrics import score
    from arc_submit.data.submission import entry_problems
    from arc_submit.data.tasks import wrong_kind
    from arc_submit.files import read_json

    solutions = load_solutions(args.solutions)
    submission = read_json(args.submission)
    if not isinstance(submission, dict):
        raise UserError([f"{args.submission}: is not an object of task id -> entries"])
    if wrong := wrong_kind(submission, "submission", args.submission):
        raise UserError(wrong)
    problems = [
        f"{args.submission}: task {task_id}: {problem}"
        for task_id, truths in solutions.items() if task_id in submission
        for problem in entry_problems(submission[task_id], len(truths))
    ]
    if problems:
        raise UserError(problems)
    missing = [task_id for task_id in solutions if task_id not in submission]
    extra = [task_id for task_id in submission if task_id not in solutions]
    if missing:
        print(f"warning: {args.submission}: {len(missing)} tasks missing, scored 0: {some(missing)}", file=sys.stderr)
    if extra:
        print(f"warning: {args.submission}: {len(extra)} tasks not in the solutions, ignored: {some(extra)}",
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
