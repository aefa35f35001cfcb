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


def plot_spread(rows: list[dict], path: Path, size: tuple[int, int] = (1000, 450)) -> None:
    """Each seed's value of each metric as a dot, with the mean and +-1 standard deviation."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    for x, name in enumerate(SPREAD_METRICS):
        values = [row[name] for row in rows if _finite(row.get(name))]
        if not values:
            continue
        axes.scatter([x] * len(values), values, color="#0074d9", alpha=0.7, zorder=3)
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
        axes.errorbar([x + 0.15], [mean], yerr=[std], fmt="s", color="#c62828", capsize=4, zorder=4)
    axes.set_xticks(range(len(SPREAD_METRICS)), SPREAD_METRICS, rotation=20)
    axes.set(ylabel="value", ylim=(-0.02, 1.02), title=f"spread over {len(rows)} seeds (dots: seeds; square: mean +- std)")
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
