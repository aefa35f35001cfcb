"""`python -m arc_submit variability --seeds 0 1 2 [run flags]`: the same submission once per seed; each
seed's row, mean / std / min / max, how many seeds solved each task, and variability.png.

    python -m arc_submit variability --seeds 0 1 2 --config smoke --dataset arc-agi-2-eval --smallest 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arc_submit.commands.studyflags import add_study_arguments, run_flags
from arc_submit.errors import UserError
from arc_submit.files import write_json
from arc_submit.studies.evaluate import (
    failed_row,
    degraded_warning,
    format_table,
    json_safe,
    result_row,
    solved_counts,
    spread,
    write_csv,
)
from arc_submit.studies.fanout import fan_out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="two or more seeds")
    parser.add_argument("--model", action="append",
                        help="model folder or alias (default: the config's); for several models: evaluate --seeds")
    add_study_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """The same submission once per seed: each seed's metrics, their spread, and per-task solve counts."""
    if len(set(args.seeds)) < 2:
        raise UserError("--seeds: give at least two different seeds to measure a spread")
    if args.model and len(args.model) > 1:
        raise UserError(f"variability takes one --model (got {len(args.model)}): to compare models over seeds, "
                        "`evaluate --model A --model B --seeds 0 1 2`")
    model = args.model[0] if args.model else None
    out = Path(args.out or "runs/variability")
    flags = run_flags(args) + (["--model", model] if model else [])
    summaries = fan_out([["run", *flags, "--seed", str(seed), "--run-dir", str(out / f"seed{seed}")]
                         for seed in args.seeds], args.executor, args.ray_address, workers=args.workers)
    rows = []
    for seed, summary in zip(args.seeds, summaries):
        run_dir, label = out / f"seed{seed}", f"seed {seed}"
        row = failed_row(label, run_dir, summary) if isinstance(summary, RuntimeError) else result_row(label, run_dir, summary)
        rows.append({**row, "seed": seed})
    stats = spread([r for r in rows if "error" not in r])
    counts = solved_counts([r for r in rows if "error" not in r])
    print(format_table(rows, "label"))
    if warning := degraded_warning(rows):
        print(warning, file=sys.stderr)
    print(format_table(stats, "statistic"))
    solved = {task_id: count for task_id, count in sorted(counts.items()) if count}
    print(f"tasks solved by some seed ({len(solved)} of {len(counts)}), with how many of the {len(args.seeds)} seeds "
          "solved each: " + (", ".join(f"{task_id} {count}" for task_id, count in solved.items()) or "none"))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "variability.json", {"runs": json_safe(rows), "spread": json_safe(stats),
                                          "solved_by_seeds": counts}, indent=1)
    write_csv(out / "variability.csv", rows + stats)
    from arc_submit.studies.plots import plot_spread

    done = [row for row in rows if "error" not in row]
    plot_spread(done, out / "variability.png",
                title=f"{model or args.config + ' model'}: spread over {len(done)} seeds (dots: seeds; square: mean +- std)")
    print(f"plot: {out / 'variability.png'}")
    summary = json_safe([{"seeds": args.seeds, "score_mean": stats[0]["score"], "score_std": stats[1]["score"],
                           "out": str(out)}])[0]
    print(json.dumps(summary))
    return 1 if any("error" in row for row in rows) else 0
