"""The official ARC score of a submission, and the research metrics of a predictions file.

    python -m arc_submit score --submission submission.json --solutions solutions.json
    python -m arc_submit metrics --predictions predictions.json --solutions solutions.json
"""

from __future__ import annotations

from arc_submit.data.tasks import Grid, grid_key

VOTE_KS = (1, 2)


def metric_names(ks: tuple[int, ...] = VOTE_KS) -> tuple[str, ...]:
    """The research metrics' names, in the order tables show them."""
    return ("accuracy", "correct_pixels", "correct_size", "pass_n", "unanswered") + tuple(f"vote_{k}" for k in ks)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def task_score(entries: object, truths: list[Grid]) -> float:
    """Fraction of a task's test outputs that attempt_1 or attempt_2 of its entries match exactly."""
    entries = entries if isinstance(entries, list) else []
    hits = 0
    for i, truth in enumerate(truths):
        entry = entries[i] if i < len(entries) and isinstance(entries[i], dict) else {}
        hits += truth in (entry.get("attempt_1"), entry.get("attempt_2"))
    return hits / len(truths)


def score(submission: dict, solutions: dict[str, list[Grid]]) -> dict:
    """The official score: mean over the solutions' tasks of each task's fraction of correct outputs.

    A task missing from the submission scores 0; tasks that are not in the solutions are ignored.
    """
    per_task = {task_id: task_score(submission.get(task_id), truths) for task_id, truths in solutions.items()}
    outputs = sum(len(truths) for truths in solutions.values())
    correct = sum(per_task[task_id] * len(truths) for task_id, truths in solutions.items())
    return {
        "score": mean(list(per_task.values())),
        "tasks": len(per_task),
        "tasks_solved": sum(value == 1.0 for value in per_task.values()),
        "test_outputs": outputs,
        "test_outputs_correct": round(correct),
        "per_task": per_task,
    }


def count_ranking(candidates: list[Grid]) -> list[Grid]:
    """Distinct answered grids by how many candidates gave them, ties in canonical grid order: the
    ranking when nothing but the grids is known (a selection rule of the run may rank otherwise)."""
    counts: dict[tuple, list] = {}
    for grid in candidates:
        if grid:
            counts.setdefault(grid_key(grid), [grid, 0])[1] += 1
    return [grid for _, (grid, _count) in sorted(counts.items(), key=lambda item: (-item[1][1], item[0]))]


def output_metrics(candidates: list[Grid], truth: Grid, ks: tuple[int, ...] = VOTE_KS,
                   ranked: list[Grid] | None = None) -> dict[str, float]:
    """The research metrics of one test output over its N candidates (`[]` = unanswered).

    `ranked` is the vote's order of distinct grids when the caller voted with more than counts
    (log-probabilities); without it, candidates are ranked by count, ties in canonical grid order.
    """
    n = len(candidates)
    if n == 0:
        return {name: 1.0 if name == "unanswered" else 0.0 for name in metric_names(ks)}
    shape = (len(truth), len(truth[0]))
    exact = sum(candidate == truth for candidate in candidates)
    sized = [c for c in candidates if c and (len(c), len(c[0])) == shape]
    cells = shape[0] * shape[1]
    pixels = sum(
        sum(a == b for row, true_row in zip(c, truth) for a, b in zip(row, true_row)) / cells for c in sized
    )
    if ranked is None:
        ranked = count_ranking(candidates)
    result = {
        "accuracy": exact / n,
        "correct_pixels": pixels / n,
        "correct_size": len(sized) / n,
        "pass_n": float(exact > 0),
        "unanswered": sum(not candidate for candidate in candidates) / n,
    }
    for k in ks:
        result[f"vote_{k}"] = float(truth in ranked[:k])
    return result


def task_metrics(outputs: object, truths: list[Grid], ks: tuple[int, ...] = VOTE_KS,
                 rankings: list[list[Grid]] | None = None) -> dict[str, float]:
    """The research metrics of one task: each metric averaged over its test outputs."""
    outputs = outputs if isinstance(outputs, list) else []
    rows = [
        output_metrics(outputs[i] if i < len(outputs) else [], truth, ks,
                       rankings[i] if rankings is not None and i < len(rankings) else None)
        for i, truth in enumerate(truths)
    ]
    return {name: mean([row[name] for row in rows]) for name in metric_names(ks)}


def research_metrics(predictions: dict, solutions: dict[str, list[Grid]], ks: tuple[int, ...] = VOTE_KS,
                     rankings: dict[str, list[list[Grid]]] | None = None) -> dict:
    """The research metrics over the solutions' tasks (DESIGN.md); a task without predictions scores 0.
    `rankings` ({task_id: [ranked grids per test output]}) gives vote_k the run's own vote order."""
    rankings = rankings or {}
    per_task = {
        task_id: task_metrics(predictions.get(task_id), truths, ks, rankings.get(task_id))
        for task_id, truths in solutions.items()
    }
    summary = {name: mean([row[name] for row in per_task.values()]) for name in metric_names(ks)}
    return {**summary, "tasks": len(per_task), "per_task": per_task}
