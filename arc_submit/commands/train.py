"""`python -m arc_submit train (--dataset NAME [--dataset NAME ...] | --challenges FILE --solutions FILE)
[--smallest N] [--limit N] [--model NAME_OR_PATH] --out DIR [--config PRESET_OR_TOML] [--set train.FIELD=VALUE]
[--seed N]`: fine-tune a model on ARC tasks with TTFT's own training code; checkpoints in DIR, TensorBoard
files in DIR/tensorboard; run it again on the same DIR to resume. The last line of stdout is JSON.

    python -m arc_submit train --dataset arc-agi-1-train --smallest 20 --out runs/train --set train.steps=200
"""

from __future__ import annotations

import argparse
from pathlib import Path

from arc_submit.commands.common import log_to, positive_int, print_json_line
from arc_submit.errors import UserError


def add_data_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The tasks to learn from (train, study)."""
    from arc_submit.data.tasks import DATASETS

    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--dataset", action="append", choices=list(DATASETS), help="embedded dataset (repeatable)")
    source.add_argument("--challenges", help="Kaggle challenges file (with --solutions: test outputs are learnt too)")
    parser.add_argument("--solutions", help="solutions of --challenges")
    parser.add_argument("--smallest", type=positive_int, help="only the N tasks with the fewest cells")
    parser.add_argument("--limit", type=positive_int, help="only the first N tasks (by task id)")


def training_tasks(args: argparse.Namespace) -> list:
    from arc_submit.data.tasks import load_dataset, load_tasks, smallest
    from arc_submit.studies.train import with_solved_tests

    if args.challenges:
        tasks = load_tasks(args.challenges, args.solutions)
    else:
        if args.solutions:
            raise UserError("--solutions needs --challenges (embedded datasets bring their own)")
        tasks = [task for name in args.dataset for task in load_dataset(name)]
        if len({t.task_id for t in tasks}) != len(tasks):
            raise UserError(f"--dataset {' '.join(args.dataset)}: the same task id twice; give each dataset once")
    tasks = smallest(tasks, args.smallest) if args.smallest else tasks
    return with_solved_tests(sorted(tasks, key=lambda t: t.task_id)[: args.limit])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--model", help="alias, transformers folder or LoRA adapter folder (default: the config's)")
    parser.add_argument("--out", required=True, help="folder for checkpoints, TensorBoard files; rerun it to resume")
    parser.add_argument("--config", default="cpu", help="preset or TOML file (its [train] section; default cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a setting, e.g. --set train.steps=200 (repeatable)")
    parser.add_argument("--seed", type=int, help="drives the split, the examples and the LoRA initialisation")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from arc_submit.config import load_config
    from arc_submit.run.session import set_threads
    from arc_submit.studies.train import Training

    config = load_config(args.config, args.set, **{"run.seed": args.seed, "model.name": args.model})
    tasks = training_tasks(args)
    out = Path(args.out)
    log_to(out)
    set_threads(config)
    summary = Training(config, tasks, out, progress=not args.quiet).run()
    print(f"trained {summary['steps']} steps on {summary['train_tasks']} tasks ({summary['validation_tasks']} held out): "
          f"loss {summary['train_loss']:.4f}, validation loss {summary['val_loss']:.4f}; checkpoints in {out}")
    print_json_line({k: (None if isinstance(v, float) and v != v else v) for k, v in summary.items()})
    return 0
