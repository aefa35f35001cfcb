"""`python -m arc_submit validate --challenges FILE [--submission FILE]`: check a challenges file, and a
submission against it; exit 0 when valid, else one line per problem naming the task and exit 1."""

from __future__ import annotations

import argparse

from arc_submit.commands.common import report_invalid
from arc_submit.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--challenges", required=True, help="Kaggle challenges file, or a folder of task JSON")
    parser.add_argument("--submission", help="a submission.json to check against the challenges")


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the challenges (and the submission) are valid; else one line per problem, exit 1."""
    from arc_submit.data.submission import inputs_per_task, submission_problems
    from arc_submit.data.tasks import load_tasks
    from arc_submit.files import read_json

    try:
        tasks = load_tasks(args.challenges)
    except UserError as error:
        return report_invalid(error.problems, args.challenges)
    if args.submission is None:
        print(f"valid: {args.challenges}: {len(tasks)} tasks, {sum(len(t.test) for t in tasks)} test inputs")
        return 0
    try:
        problems = submission_problems(read_json(args.submission), inputs_per_task(tasks), args.submission)
    except UserError as error:
        problems = error.problems
    if problems:
        return report_invalid(problems, args.submission)
    print(f"valid: {args.submission}: {len(tasks)} tasks match {args.challenges}")
    return 0
