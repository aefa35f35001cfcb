"""Plots of studies (matplotlib, headless): metrics against checkpoint steps, and the spread over seeds.
Figures have a fixed size in pixels (no tight bounding box), so a caller knows what it gets."""

from __future__ import annotations

import math
from pathlib import Path

CHECKPOINT_METRICS = ("score", "vote_2", "pass_n", "accuracy", "correct_pixels", "correct_size")
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


SCORE_METRICS = ("score", "vote_1", "vote_2", "pass_n", "accuracy")  # left panel, its axis fitted to them
SHARE_METRICS = ("correct_pixels", "correct_size", "unanswered")  # right panel, 0 to 1


def plot_spread(rows: list[dict], path: Path, size: tuple[int, int] = (1000, 450), group: str | None = None,
                title: str = "") -> None:
    """Each run's value of each metric as a dot, with the mean and +-1 standard deviation; with `group`
    (a row key such as the model's label), each group in its own colour, named in the legend. The scores
    (left) get an axis fitted to them, so that ARC-AGI-2 scores near 0 are not flattened against 0-1;
    the shares (right: correct pixels and sizes, unanswered) keep 0-1."""
    plt = _pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI,
                                  gridspec_kw={"width_ratios": [len(SCORE_METRICS), len(SHARE_METRICS)]})
    groups = list(dict.fromkeys(row.get(group) for row in rows)) if group else [None]
    colours = ["#0074d9", "#ff851b", "#2ecc40", "#b10dc9", "#ff4136", "#39cccc"]
    width = 0.7 / len(groups)
    for axes, metrics in zip(panels, (SCORE_METRICS, SHARE_METRICS)):
        shown = []
        for g, name in enumerate(groups):
            members = [row for row in rows if group is None or row.get(group) == name]
            colour = colours[g % len(colours)]
            for x, metric in enumerate(metrics):
                values = [row[metric] for row in members if _finite(row.get(metric))]
                if not values:
                    continue
                shown += values
                left = x - 0.35 + g * width
                axes.scatter([left] * len(values), values, color=colour, alpha=0.7, zorder=3,
                             label=str(name) if group and x == 0 and axes is panels[0] else None)
                mean = sum(values) / len(values)
                std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
                axes.errorbar([left + width / 2], [mean], yerr=[std], fmt="s", color=colour, ecolor="#333333",
                              capsize=3, zorder=4)
        top = max(max(shown, default=1.0), 0.05) if metrics is SCORE_METRICS else 1.0
        axes.set_xticks(range(len(metrics)), metrics, rotation=20)
        axes.set(ylim=(-0.02 * top, top * 1.1))
    panels[0].set(ylabel="value")
    runs = len({row.get("seed") for row in rows})
    figure.suptitle(title or f"spread over {runs} seeds (dots: runs; square: mean +- std)")
    if group:
        figure.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
