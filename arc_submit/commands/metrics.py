"""`python -m arc_submit metrics --predictions FILE --solutions FILE`: the research metrics; the last line
of stdout is a JSON object."""

from __future__ import annotations

import argparse
import sys

from arc_submit.commands.common import load_solutions, print_json_line, some
from arc_submit.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions file {task_id: [[grid, ...], ...]}")
    parser.add_argument("--solutions", required=True, help="solutions file {task_id: [grid, ...]}")


def main(args: argparse.Namespace) -> int:
    """Print the research metrics; the last line of stdout is a JSON object."""
    from arc_submit.data.metrics import metric_names, research_metrics
    from arc_submit.data.submission import predictions_problems
    from arc_submit.files import read_json

    solutions = load_solutions(args.solutions)
    predictions = read_json(args.predictions)
    counts = {task_id: len(grids) for task_id, grids in solutions.items()}
    problems = predictions_problems(predictions, counts, args.predictions)
    if problems:
        raise UserError(problems)
    missing = [task_id for task_id in solutions if task_id not in predictions]
    if missing:
        print(f"warning: {args.predictions}: {len(missing)} tasks have no predictions, counted unanswered: "
              f"{some(missing)}", file=sys.stderr)
    grids, rankings = ranked_predictions(predictions)
    result = research_metrics(grids, solutions, rankings=rankings)
    result.pop("per_task")
    print("  ".join(f"{name} {result[name]:.4f}" for name in metric_names()))
    print_json_line(result)
    return 0


def ranked_predictions(predictions: dict) -> tuple[dict, dict]:
    """(the candidate grids, the ranking of each test input) of a predictions file: a run's file carries
    each grid's score under its selection rule, so vote_k ranks as the run did; plain grids rank by count."""
    from arc_submit.data.submission import candidate_grid
    from arc_submit.predict.selection import rank_scored

    grids, rankings = {}, {}
    for task_id, outputs in predictions.items():
        grids[task_id] = [[candidate_grid(c) for c in output] for output in outputs]
        rankings[task_id] = [rank_scored(
            (c["grid"], c.get("logprob"), c.get("tokens", 0), c.get("score")) if isinstance(c, dict) else (c, None, 0, None)
            for c in output) for output in outputs]
    return grids, rankings
