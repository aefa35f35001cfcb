"""Evaluation and variability studies: the pipeline once per model (or checkpoint) or once per seed,
each in a fresh process (its own engine, its memory given back), then a table, metrics.json, a CSV
and a plot.

    python -m arc_submit evaluate --model ckpts/checkpoint-100 --model ckpts/checkpoint-200 --dataset arc-agi-1-eval --limit 20
    python -m arc_submit variability --seeds 0 1 2 --config smoke --dataset arc-agi-2-eval --smallest 2
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from pathlib import Path

from arc_submit.files import read_json

ROW_METRICS = ("score", "vote_1", "vote_2", "pass_n", "accuracy", "correct_pixels", "correct_size", "unanswered",
               "ttft_loss", "eval_loss", "degraded")
STEP_PATTERN = re.compile(r"(?:checkpoint|step|ckpt)[-_]?(\d+)", re.IGNORECASE)


# ----------------------------------------------------------------------------- one run


def run_in_process(flags: list[str], run_dir: Path) -> dict:
    """`python -m arc_submit run FLAGS --run-dir RUN_DIR` in a fresh interpreter; its JSON summary."""
    from arc_submit.studies.fanout import call

    return call(["run", *flags, "--run-dir", str(run_dir)])


def run_losses(run_dir: Path) -> tuple[float, float]:
    """Mean over tasks of the TTFT loss at the end of training (mean of its last tenth of steps) and of
    the last eval loss; NaN where there are none."""
    from arc_submit.run.rundir import RunDir

    finals, evals = [], []
    for record in RunDir(run_dir).records().values():
        losses = record.ttft.losses if record.ttft else []
        if losses:
            tail = losses[-max(1, len(losses) // 10):]
            finals.append(sum(tail) / len(tail))
        if record.ttft and record.ttft.eval_losses:
            evals.append(record.ttft.eval_losses[-1][1])
    mean = lambda values: sum(values) / len(values) if values else math.nan  # noqa: E731
    return mean(finals), mean(evals)


def result_row(label: str, run_dir: Path, summary: dict) -> dict:
    metrics = summary.get("metrics", {})
    ttft_loss, eval_loss = run_losses(run_dir)
    row = {"label": label, "run_dir": str(run_dir)}
    row.update({name: metrics.get(name, math.nan) for name in ROW_METRICS[:8]})
    row.update(ttft_loss=ttft_loss, eval_loss=eval_loss, degraded=degraded_tasks(summary), tasks=metrics.get("tasks", 0))
    return row


def degraded_tasks(summary: dict) -> int:
    """Tasks of a run that got less than their plan (cut by the time budget, no TTFT, fallback, a stage
    that failed): a row with any scores less than its model can."""
    cut = sum(count for mode, count in summary.get("modes", {}).items() if mode != "full")
    return max(cut, len(summary.get("degraded") or {}))


def degraded_warning(rows: list[dict]) -> str | None:
    """One line naming the rows whose runs degraded tasks (None when none did)."""
    hit = [f"{row['label']} ({row['degraded']})" for row in rows if row.get("degraded")]
    if not hit:
        return None
    return (f"warning: {len(hit)} of {len(rows)} runs degraded tasks (time budget, out of memory; count in the "
            f"'degraded' column), so they score less than their model can: {', '.join(hit)}")


def failed_row(label: str, run_dir: Path, error: Exception) -> dict:
    return {"label": label, "run_dir": str(run_dir), **{name: math.nan for name in ROW_METRICS}, "error": str(error)}


# ----------------------------------------------------------------------------- tables and files


def format_table(rows: list[dict], first: str, columns: tuple[str, ...] = ROW_METRICS) -> str:
    header = [first, *columns]
    lines = [[str(row.get(first, ""))] + [_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    text = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    text += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines]
    return "\n".join(text)


def _cell(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return "" if value is None else str(value)


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)


def json_safe(rows: list[dict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]


# ----------------------------------------------------------------------------- evaluate


def checkpoint_step(model: str) -> int | None:
    """The training step of a checkpoint: trainer_state.json's global_step, else a number in its name."""
    folder = Path(model)
    state = folder / "trainer_state.json"
    if state.is_file():
        step = json.loads(state.read_text()).get("global_step")
        if isinstance(step, int):
            return step
    match = STEP_PATTERN.search(folder.name)
    return int(match[1]) if match else None


def checkpoint_losses(model: str) -> dict:
    """The training run's own loss and eval loss at the checkpoint (from trainer_state.json), if any."""
    state = Path(model) / "trainer_state.json"
    if not state.is_file():
        return {}
    history = json.loads(state.read_text()).get("log_history", [])
    found = {}
    for entry in history:
        for key, name in (("loss", "training_loss"), ("eval_loss", "training_eval_loss")):
            if key in entry:
                found[name] = entry[key]
    return found


def unique_label(label: str, taken: set[str]) -> str:
    candidate, number = label, 2
    while candidate in taken:
        candidate, number = f"{label}-{number}", number + 1
    taken.add(candidate)
    return candidate


# ----------------------------------------------------------------------------- variability


def spread(rows: list[dict], columns: tuple[str, ...] = ROW_METRICS) -> list[dict]:
    """mean, std (sample), min and max of each column over the rows that have it."""
    result = []
    for name, function in (("mean", statistics.fmean), ("std", statistics.stdev), ("min", min), ("max", max)):
        row = {"statistic": name}
        for column in columns:
            values = [r[column] for r in rows if isinstance(r.get(column), float) and not math.isnan(r[column])]
            row[column] = function(values) if len(values) >= (2 if name == "std" else 1) else math.nan
        result.append(row)
    return result


def solved_tasks(row: dict) -> dict[str, bool]:
    """For each task of a row's run, whether it was solved (every test output right)."""
    path = Path(row["run_dir"]) / "metrics.json"
    per_task = read_json(path).get("per_task", {}) if path.is_file() else {}
    return {task_id: values.get("score") == 1.0 for task_id, values in per_task.items()}


def solved_counts(rows: list[dict]) -> dict[str, int]:
    """For each task, how many of the runs solved it (every test output right)."""
    counts: dict[str, int] = {}
    for row in rows:
        for task_id, solved in solved_tasks(row).items():
            counts[task_id] = counts.get(task_id, 0) + solved
    return counts


PAIRED = ("a_only", "b_only", "both", "neither")


def paired_tasks(a_rows: list[dict], b_rows: list[dict], a: str, b: str) -> dict:
    """Two models' runs paired by seed: for each task, over the seeds both ran, how often only A solved
    it, only B, both, neither; and the totals over tasks."""
    b_by_seed = {row["seed"]: row for row in b_rows}
    tasks: dict[str, dict[str, int]] = {}
    seeds = [row["seed"] for row in a_rows if row["seed"] in b_by_seed]
    for row in a_rows:
        if row["seed"] not in b_by_seed:
            continue
        solved_a, solved_b = solved_tasks(row), solved_tasks(b_by_seed[row["seed"]])
        for task_id in sorted(set(solved_a) | set(solved_b)):
            x, y = solved_a.get(task_id, False), solved_b.get(task_id, False)
            kind = "both" if x and y else "a_only" if x else "b_only" if y else "neither"
            counts = tasks.setdefault(task_id, dict.fromkeys(PAIRED, 0))
            counts[kind] += 1
    totals = {kind: sum(counts[kind] for counts in tasks.values()) for kind in PAIRED}
    return {"a": a, "b": b, "seeds": seeds, "tasks": tasks, "totals": totals}


def format_paired(pair: dict) -> str:
    """The paired table as text: the tasks some run solved, one line each, and the totals."""
    a, b = pair["a"], pair["b"]
    header = f"paired over seeds {', '.join(map(str, pair['seeds']))}: {a} (A) vs {b} (B), task-seed pairs solved by"
    rows = [{"task": task_id, **counts} for task_id, counts in pair["tasks"].items() if counts["neither"] < sum(counts.values())]
    table = format_table(rows, "task", PAIRED) if rows else "no task solved by either"
    totals = ", ".join(f"{kind} {count}" for kind, count in pair["totals"].items())
    return f"{header}\n{table}\ntotal: {totals}"
