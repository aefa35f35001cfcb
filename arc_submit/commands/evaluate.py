"""`python -m arc_submit evaluate --model PATH [--model PATH ...] ...`: the pipeline once per model or
checkpoint, each in a fresh process; a table row each, metrics.json, metrics.csv and checkpoints.png.

    python -m arc_submit evaluate --model ckpts/checkpoint-100 --model ckpts/checkpoint-200 --dataset arc-agi-1-eval --limit 20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arc_submit.commands.studyflags import add_study_arguments, run_flags
from arc_submit.files import write_json
from arc_submit.studies.evaluate import (
    checkpoint_losses,
    checkpoint_step,
    failed_row,
    degraded_warning,
    format_table,
    json_safe,
    result_row,
    unique_label,
    write_csv,
)
from arc_submit.studies.fanout import fan_out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", help="model or checkpoint folder, or alias (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every run (default 0)")
    add_study_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """One pipeline run per model; a table row each; metrics.json, metrics.csv, and checkpoints.png."""
    models = args.model or ["smollm2-135m"]
    out = Path(args.out or "runs/evaluate")
    flags = run_flags(args) + ["--seed", str(args.seed)]
    rows, labels = [], set()
    runs = [(model, unique_label(Path(model).name or model, labels)) for model in models]
    summaries = fan_out([["run", *flags, "--model", model, "--run-dir", str(out / f"{label}-seed{args.seed}")]
                         for model, label in runs], args.executor, args.ray_address)
    for (model, label), summary in zip(runs, summaries):
        run_dir = out / f"{label}-seed{args.seed}"
        row = failed_row(label, run_dir, summary) if isinstance(summary, RuntimeError) else result_row(label, run_dir, summary)
        row.update(model=model, step=checkpoint_step(model), **checkpoint_losses(model))
        rows.append(row)
    print(format_table(rows, "label"))
    if degraded_warning(rows):
        print(degraded_warning(rows), file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", json_safe(rows), indent=1)
    write_csv(out / "metrics.csv", rows)
    stepped = [row for row in rows if row["step"] is not None and "error" not in row]
    if len(stepped) >= 2:
        from arc_submit.studies.plots import plot_checkpoints

        plot_checkpoints(sorted(stepped, key=lambda row: row["step"]), out / "checkpoints.png")
        print(f"plot: {out / 'checkpoints.png'}")
    print(json.dumps({"rows": len(rows), "out": str(out), "failed": [r["label"] for r in rows if "error" in r]}))
    return 1 if any("error" in row for row in rows) else 0
