"""`python -m arc_submit study --vary "KEY=V1;V2;..." [--vary ...] (train data flags) (--eval-dataset NAME |
--eval-challenges FILE --eval-solutions FILE) [--eval-smallest N] [--eval-limit N] --out DIR [--config ...]
[--set ...] [--seed N] [--no-ttft]`: for each setting of the grid, train, then evaluate every checkpoint
with the whole pipeline; one table (CSV, Markdown) and one HTML page. Rerun it to resume.

    python -m arc_submit study --vary "prompt.encoder=MinimalGridEncoder();GridShapeEncoder(MinimalGridEncoder())" \\
        --dataset arc-agi-1-train --smallest 20 --eval-dataset arc-agi-1-eval --eval-smallest 8 --out runs/study
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from arc_submit.commands.common import positive_int, print_json_line
from arc_submit.commands.studyflags import add_executor_arguments
from arc_submit.commands.train import add_data_arguments
from arc_submit.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.data.tasks import DATASETS

    parser.add_argument("--vary", action="append", required=True, metavar="SECTION.FIELD=V1;V2",
                        help="values of one setting, split on ';' (repeatable: several make a grid)")
    add_data_arguments(parser)
    evaluation = parser.add_mutually_exclusive_group(required=True)
    evaluation.add_argument("--eval-dataset", choices=list(DATASETS), help="the tasks each checkpoint is evaluated on")
    evaluation.add_argument("--eval-challenges", help="evaluation challenges file (needs --eval-solutions)")
    parser.add_argument("--eval-solutions", help="solutions of --eval-challenges")
    parser.add_argument("--eval-smallest", type=positive_int, help="only the N evaluation tasks with fewest cells")
    parser.add_argument("--eval-limit", type=positive_int, help="only the first N evaluation tasks")
    parser.add_argument("--no-ttft", action="store_true", help="evaluate the checkpoints without TTFT")
    parser.add_argument("--model", help="the model every setting starts from (default: the config's)")
    parser.add_argument("--config", default="cpu", help="preset or TOML file (default cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="a setting for every training and evaluation (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every training and evaluation")
    parser.add_argument("--out", required=True, help="folder of the study (rerun it to resume)")
    add_executor_arguments(parser)


def _data_flags(args: argparse.Namespace) -> list[str]:
    if args.challenges:
        flags = ["--challenges", args.challenges] + (["--solutions", args.solutions] if args.solutions else [])
    else:
        flags = [item for name in args.dataset for item in ("--dataset", name)]
    flags += ["--smallest", str(args.smallest)] if args.smallest else []
    return flags + (["--limit", str(args.limit)] if args.limit else [])


def _eval_flags(args: argparse.Namespace) -> list[str]:
    if args.eval_challenges:
        if not args.eval_solutions:
            raise UserError("--eval-challenges needs --eval-solutions: the checkpoints are scored against them")
        flags = ["--challenges", args.eval_challenges, "--solutions", args.eval_solutions]
    else:
        flags = ["--dataset", args.eval_dataset] + (["--smallest", str(args.eval_smallest)] if args.eval_smallest else [])
    return flags + (["--limit", str(args.eval_limit)] if args.eval_limit else [])


def main(args: argparse.Namespace) -> int:
    from arc_submit.config import load_config
    from arc_submit.files import write_json, write_text
    from arc_submit.studies.evaluate import write_csv
    from arc_submit.studies.fanout import fan_out
    from arc_submit.studies.study import (
        checkpoint_steps,
        html_page,
        markdown_table,
        parse_vary,
        setting_row,
        settings_grid,
    )

    grid = settings_grid(parse_vary(args.vary))
    common = ["--config", args.config, "--seed", str(args.seed), *[x for s in args.set for x in ("--set", s)]]
    common += ["--model", args.model] if args.model else []
    for setting in grid:  # a bad setting is refused here, before hours of training
        load_config(args.config, [*args.set, *setting.overrides])
    out = Path(args.out)
    sets = {setting.name: [x for s in setting.overrides for x in ("--set", s)] for setting in grid}
    trainings = fan_out([["train", *_data_flags(args), *common, *sets[setting.name], "--out",
                          str(out / setting.name / "training"), "--quiet"] for setting in grid],
                        args.executor, args.ray_address, workers=args.workers)
    failed = [setting.name for setting, result in zip(grid, trainings) if isinstance(result, RuntimeError)]
    if failed:
        raise UserError(f"the training of {', '.join(failed)} failed: see {out / failed[0] / 'training' / 'run.log'}")
    jobs = [(setting, step, checkpoint) for setting in grid for step, checkpoint in
            checkpoint_steps(out / setting.name / "training")]
    summaries = fan_out([["run", *_eval_flags(args), *common, *sets[setting.name], "--model", str(checkpoint), "--quiet",
                          *(["--set", "ttft.steps=0"] if args.no_ttft else []), "--run-dir",
                          str(out / setting.name / "evaluation" / checkpoint.name)]
                         for setting, _, checkpoint in jobs], args.executor, args.ray_address, workers=args.workers)
    rows, curves = [], {}
    for setting, training in zip(grid, trainings):
        folder = out / setting.name
        evaluations = [{"step": step, "metrics": {} if isinstance(summary, RuntimeError) else summary.get("metrics", {})}
                       for (owner, step, _), summary in zip(jobs, summaries) if owner == setting]
        history = json.loads((checkpoint_steps(folder / "training")[-1][1] / "trainer_state.json").read_text())["log_history"]
        curves[setting.name] = {"metrics": [(e["step"], e["metrics"]) for e in evaluations],
                                "val_loss": [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]}
        rows.append(setting_row(setting, training, evaluations))
        write_json(folder / "study-row.json", {"row": rows[-1], "evaluations": evaluations}, indent=1)
    table = markdown_table(rows)
    write_text(out / "study.md", table + "\n")
    write_csv(out / "study.csv", rows)
    write_text(out / "study.html", html_page(rows, curves, f"arc-submit study: {'; '.join(args.vary)}"))
    print(table)
    print(f"table: {out / 'study.md'}, {out / 'study.csv'}; page: {out / 'study.html'}")
    print_json_line({"settings": len(grid), "out": str(out), "rows": rows})
    return 0
