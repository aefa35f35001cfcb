"""`python -m arc_submit render --challenges FILE [--submission FILE] [--solutions FILE] --out DIR`: a PNG
per task in the ARC palette, attempts framed green when right and red when wrong."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from arc_submit.data.tasks import load_tasks
from arc_submit.errors import UserError
from arc_submit.files import read_json
from arc_submit.studies.render import png_bytes, task_image, views_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--challenges", required=True, help="Kaggle challenges file, or a folder of task JSON")
    parser.add_argument("--solutions", help="solutions file: attempts are framed green when right, red when wrong")
    parser.add_argument("--submission", help="a submission whose attempts are drawn")
    parser.add_argument("--out", required=True, help="folder for <task_id>.png")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")


def main(args: argparse.Namespace) -> int:
    tasks = load_tasks(args.challenges, args.solutions)
    if args.task:
        unknown = sorted(set(args.task) - {t.task_id for t in tasks})
        if unknown:
            raise UserError(f"--task {unknown[0]}: not in {args.challenges}")
        tasks = [t for t in tasks if t.task_id in args.task]
    submission = read_json(args.submission) if args.submission else {}
    if not isinstance(submission, dict):
        raise UserError(f"{args.submission}: not an object of task id -> entries")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        image = task_image(task, views_for(task, submission.get(task.task_id)))
        (out / f"{task.task_id}.png").write_bytes(png_bytes(image))
    print(f"wrote {len(tasks)} pictures to {out}")
    print(json.dumps({"pictures": len(tasks), "out": str(out)}))
    return 0
