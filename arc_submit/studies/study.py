"""Studies, the research log's loop: for each setting of a grid (`--vary KEY=V1;V2`), train a model with
it, evaluate every checkpoint with the whole pipeline, and put the settings side by side: one table
(setting | train loss | val loss | accuracy | correct_pixels | correct_size | pass_n | unanswered |
score) as CSV and Markdown, and an HTML page with the metrics and the validation loss against the step.
Every stage resumes (trainings from their last checkpoint, evaluations from their run dirs).

    python -m arc_submit study --vary "prompt.encoder=MinimalGridEncoder();GridShapeEncoder(MinimalGridEncoder())" \\
        --dataset arc-agi-1-train --smallest 20 --eval-dataset arc-agi-1-eval --eval-smallest 8 --out runs/study
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from arc_submit.errors import UserError

COLUMNS = ("train_loss", "val_loss", "accuracy", "correct_pixels", "correct_size", "pass_n", "unanswered", "score")


@dataclass(frozen=True)
class Setting:
    """One point of the grid: its name (a folder) and its `--set` overrides."""

    name: str
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        return "; ".join(self.overrides)


def parse_vary(texts: list[str]) -> list[tuple[str, list[str]]]:
    """`KEY=V1;V2;...` -> (KEY, [V1, V2, ...]); values are split on `;` (encoder specs hold commas)."""
    axes = []
    for text in texts:
        key, sep, values = text.partition("=")
        choices = [value.strip() for value in values.split(";") if value.strip()]
        if not sep or not key.strip() or "." not in key or not choices:
            raise UserError(f"--vary {text!r}: expected SECTION.FIELD=VALUE1;VALUE2, e.g. "
                            "--vary 'train.learning_rate=1e-4;2e-4'")
        axes.append((key.strip(), choices))
    return axes


def settings_grid(axes: list[tuple[str, list[str]]]) -> list[Setting]:
    """Every combination of the axes' values, each named for its folder."""
    grid = []
    for index, values in enumerate(itertools.product(*[choices for _, choices in axes]), start=1):
        overrides = tuple(f"{key}={value}" for (key, _), value in zip(axes, values))
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", "_".join(values)).strip("-")[:60]
        grid.append(Setting(f"{index:02d}-{slug}", overrides))
    return grid


def checkpoint_steps(training: Path) -> list[tuple[int, Path]]:
    found = [(int(p.name.split("-")[1]), p) for p in training.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    return sorted(found)


def setting_row(setting: Setting, training: dict, evaluations: list[dict]) -> dict:
    """The table's row of a setting: its training's losses and its last checkpoint's metrics."""
    last = evaluations[-1]["metrics"] if evaluations else {}
    row = {"setting": setting.label, "name": setting.name, "train_loss": training.get("train_loss"),
           "val_loss": training.get("val_loss")}
    row.update({name: last.get(name, math.nan) for name in COLUMNS[2:]})
    return row


def markdown_table(rows: list[dict]) -> str:
    header = "| setting | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for row in rows:
        cells = [_cell(row.get(name)) for name in COLUMNS]
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def html_page(rows: list[dict], curves: dict[str, dict], title: str) -> str:
    """One self-contained page: the table, then metrics and validation loss against the step."""
    table = "".join(f"<tr><td>{html.escape(row['setting'])}</td>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in COLUMNS)
                    + "</tr>" for row in rows)
    head = "<tr><th>setting</th>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"
    picture = base64.b64encode(_plot(curves)).decode()
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:24px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><table>{head}{table}</table>"
            f"<h2>Against the step</h2><img alt=\"metrics and validation loss against the step\" "
            f"src=\"data:image/png;base64,{picture}\"></body></html>\n")


def _plot(curves: dict[str, dict]) -> bytes:
    """score, pass_n and accuracy of each checkpoint, and the validation loss, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(16, 4), dpi=100)
    for name, curve in curves.items():
        for axis, metric in zip(axes[:3], ("score", "pass_n", "accuracy")):
            points = [(step, values[metric]) for step, values in curve["metrics"] if metric in values]
            axis.plot([s for s, _ in points], [v for _, v in points], marker="o", label=name)
            axis.set(title=metric, xlabel="step", ylim=(-0.02, 1.02))
        losses = curve["val_loss"]
        axes[3].plot([s for s, _ in losses], [v for _, v in losses], marker=".", label=name)
        axes[3].set(title="validation loss", xlabel="step")
    axes[0].legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
