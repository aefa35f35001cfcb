"""Plots of studies (matplotlib, headless): metrics against checkpoint steps, and the spread over seeds.
Figures have a fixed size in pixels (no tight bounding box), so a caller knows what it gets."""

from __future__ import annotations

import math
from pathlib import Path

CHECKPOINT_METRICS = ("score", "vote_2", "pass_n", "accuracy", "correct_pixels", "correct_size")
SPREAD_METRICS = ("score", "vote_1", "vote_2", "pass_n", "accuracy", "correct_pixels", "correct_size", "unanswered")
DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def plot_checkpoints(rows: list[dict], path: Path, size: tuple[int, int] = (1200, 450)) -> None:
    """Each metric against the checkpoint's step (left), the losses against it (right)."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    steps = [row["step"] for row in rows]
    for name in CHECKPOINT_METRICS:
        left.plot(steps, [row.get(name, math.nan) for row in rows], marker="o", label=name)
    left.set(xlabel="checkpoint step", ylabel="metric", title="metrics", ylim=(-0.02, 1.02))
    left.legend(fontsize=8)
    for name in ("ttft_loss", "eval_loss", "training_loss", "training_eval_loss"):
        values = [row.get(name, math.nan) for row in rows]
        if any(_finite(v) for v in values):
            right.plot(steps, values, marker="o", label=name)
    right.set(xlabel="checkpoint step", ylabel="loss", title="losses")
    right.legend(fontsize=8)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_spread(rows: list[dict], path: Path, size: tuple[int, int] = (1000, 450), group: str | None = None,
                title: str = "") -> None:
    """Each run's value of each metric as a dot, with the mean and +-1 standard deviation; with `group`
    (a row key such as the model's label), each group in its own colour, named in the legend. The value
    axis fits the values (ARC-AGI-2 scores near 0 are not flattened against a 0-1 axis)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    groups = list(dict.fromkeys(row.get(group) for row in rows)) if group else [None]
    colours = ["#0074d9", "#ff851b", "#2ecc40", "#b10dc9", "#ff4136", "#39cccc"]
    width = 0.7 / len(groups)
    shown = []
    for g, name in enumerate(groups):
        members = [row for row in rows if group is None or row.get(group) == name]
        colour = colours[g % len(colours)]
        for x, metric in enumerate(SPREAD_METRICS):
            values = [row[metric] for row in members if _finite(row.get(metric))]
            if not values:
                continue
            shown += values
            left = x - 0.35 + g * width
            axes.scatter([left] * len(values), values, color=colour, alpha=0.7, zorder=3,
                         label=str(name) if group and x == 0 else None)
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
            axes.errorbar([left + width / 2], [mean], yerr=[std], fmt="s", color=colour, ecolor="#333333",
                          capsize=3, zorder=4)
    top = max(shown, default=1.0)
    axes.set_xticks(range(len(SPREAD_METRICS)), SPREAD_METRICS, rotation=20)
    runs = len({row.get("seed") for row in rows})
    axes.set(ylabel="value", ylim=(-0.02 * max(top, 0.05), max(top, 0.05) * 1.1),
             title=title or f"spread over {runs} seeds (dots: runs; square: mean +- std)")
    if group:
        axes.legend(fontsize=8, loc="upper right")
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
