"""`python -m arc_submit evaluate --model PATH [--model PATH ...] [--seeds S ...] ...`: the pipeline once
per model (or checkpoint) and seed, each in a fresh process, each in its own run dir under --out (a rerun
resumes); a table row each, metrics.json, metrics.csv and checkpoints.png. With several seeds, also the
mean and std per model, a paired per-task table (solved by A only, by B only, by both, by neither, over
the seeds) and seeds.png (every run's metrics, each model in its colour).

    python -m arc_submit evaluate --model ckpts/checkpoint-100 --model ckpts/checkpoint-200 --dataset arc-agi-1-eval --limit 20
    python -m arc_submit evaluate --model A --model B --seeds 0 1 2 --dataset arc-agi-2-eval --smallest 8 --workers 2
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
    degraded_warning,
    failed_row,
    format_paired,
    format_table,
    json_safe,
    paired_tasks,
    result_row,
    spread,
    unique_label,
    write_csv,
)
from arc_submit.studies.fanout import fan_out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", help="model or checkpoint folder, or alias (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every run (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="run every model once per seed (a model x seed grid) instead of --seed")
    add_study_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """One pipeline run per model and seed; a table row each; metrics.json, metrics.csv, checkpoints.png;
    with several seeds, the spread per model, the paired per-task table and seeds.png."""
    models = args.model or ["smollm2-135m"]
    seeds = list(dict.fromkeys(args.seeds)) if args.seeds else [args.seed]
    out = Path(args.out or "runs/evaluate")
    flags = run_flags(args)
    labels: set[str] = set()
    labelled = [(model, unique_label(Path(model).name or model, labels)) for model in models]
    runs = [(model, label, seed) for model, label in labelled for seed in seeds]
    summaries = fan_out([["run", *flags, "--seed", str(seed), "--model", model, "--run-dir", str(out / f"{label}-seed{seed}")]
                         for model, label, seed in runs], args.executor, args.ray_address, workers=args.workers)
    rows = []
    for (model, label, seed), summary in zip(runs, summaries):
        run_dir = out / f"{label}-seed{seed}"
        row = failed_row(label, run_dir, summary) if isinstance(summary, RuntimeError) else result_row(label, run_dir, summary)
        row.update(run=f"{label} seed {seed}" if len(seeds) > 1 else label, seed=seed, model=model,
                   step=checkpoint_step(model), **checkpoint_losses(model))
        rows.append(row)
    print(format_table(rows, "run"))
    if warning := degraded_warning(rows):
        print(warning, file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", json_safe(rows), indent=1)
    write_csv(out / "metrics.csv", rows)
    stepped = [row for row in rows if row["step"] is not None and "error" not in row]
    if len(stepped) >= 2 and len(seeds) == 1:
        from arc_submit.studies.plots import plot_checkpoints

        plot_checkpoints(sorted(stepped, key=lambda row: row["step"]), out / "checkpoints.png")
        print(f"plot: {out / 'checkpoints.png'}")
    if len(seeds) > 1:
        _seed_grid(rows, [label for _, label in labelled], out)
    print(json.dumps({"rows": len(rows), "out": str(out), "failed": [r["run"] for r in rows if "error" in r]}))
    return 1 if any("error" in row for row in rows) else 0


def _seed_grid(rows: list[dict], labels: list[str], out: Path) -> None:
    """The spread per model, the paired per-task tables, seeds.png; written beside metrics.json."""
    from arc_submit.studies.plots import plot_spread

    done = [row for row in rows if "error" not in row]
    stats = [{**stat, "run": f"{label} {stat['statistic']}"} for label in labels
             for stat in spread([row for row in done if row["label"] == label])[:2]]
    print(format_table(stats, "run"))
    pairs = [paired_tasks([r for r in done if r["label"] == a], [r for r in done if r["label"] == b], a, b)
             for index, a in enumerate(labels) for b in labels[index + 1:]]
    for pair in pairs:
        print(format_paired(pair))
    write_json(out / "seeds.json", {"spread": json_safe(stats), "paired": pairs}, indent=1)
    plot_spread(done, out / "seeds.png", group="label")
    print(f"plot: {out / 'seeds.png'}")
