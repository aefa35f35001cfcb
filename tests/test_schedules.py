"""Learning-rate schedules: each sequence has its shape (warm-up, decay, restarts, decaying cycles), and the
library's curves are, point by point, the ones we wrote by hand before we used the library."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arc_submit.config import TTFTConfig
from arc_submit.model.schedules import LIBRARY, SCHEDULES, learning_rate_factor, schedule_factors


def factors(total: int = 100, **settings) -> np.ndarray:
    factor = schedule_factors(TTFTConfig(**settings), total)
    return np.array([factor(step) for step in range(total)])


def hand_written(config: TTFTConfig, step: int, total: int) -> float:
    """The curves as arc-submit wrote them until it took them from transformers.get_scheduler."""
    warmup = min(total - 1, round(config.warmup_fraction * total)) if total > 1 else 0
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    if config.schedule == "linear":
        return 1.0 - progress
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 0.5 * (1.0 + math.cos(math.pi * ((progress * max(1, config.restarts)) % 1.0)))


@pytest.mark.parametrize("schedule", list(LIBRARY))
@pytest.mark.parametrize("total", [1, 2, 3, 7, 10, 64, 100, 333])
@pytest.mark.parametrize("warmup_fraction", [0.0, 0.05, 0.1, 0.3, 0.9])
@pytest.mark.parametrize("restarts", [1, 3])
def test_library_curves_equal_the_hand_written_ones(schedule, total, warmup_fraction, restarts):
    config = TTFTConfig(schedule=schedule, warmup_fraction=warmup_fraction, restarts=restarts)
    expected = [hand_written(config, step, total) for step in range(total)]
    assert factors(total, schedule=schedule, warmup_fraction=warmup_fraction, restarts=restarts) == \
        pytest.approx(expected, abs=1e-12)
    assert learning_rate_factor(config, total - 1, total) == pytest.approx(expected[-1], abs=1e-12)


def rises(values: np.ndarray) -> int:
    """How many times the sequence jumps up after falling (a restart or a new cycle)."""
    diffs = np.diff(values)
    return int(np.sum((diffs[1:] > 1e-9) & (diffs[:-1] < -1e-9)))


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("total", [1, 2, 7, 100])
def test_every_factor_is_positive_and_at_most_one(schedule, total):
    values = factors(total, schedule=schedule)
    assert np.all(values > 0) and np.all(values <= 1 + 1e-12)


def test_linear_warms_up_then_decays_to_near_zero():
    values = factors(100, schedule="linear", warmup_fraction=0.1)
    assert np.all(np.diff(values[:10]) > 0) and values[10] == pytest.approx(1.0)
    assert np.all(np.diff(values[10:]) < 0) and values[-1] < 0.02


def test_constant_is_flat_after_warmup():
    values = factors(50, schedule="constant", warmup_fraction=0.2)
    assert np.all(values[10:] == 1.0) and values[0] < values[9]


def test_cosine_decays_smoothly():
    values = factors(100, schedule="cosine", warmup_fraction=0.0)
    assert values[0] == 1.0 and np.all(np.diff(values) < 0) and values[50] == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("restarts", [2, 3, 5])
def test_cosine_with_restarts_restarts(restarts):
    values = factors(120, schedule="cosine_restarts", restarts=restarts, warmup_fraction=0.0)
    jumps = np.where(np.diff(values) > 0.5)[0]
    assert len(jumps) == restarts - 1
    assert all(values[j + 1] == pytest.approx(1.0) for j in jumps)


@pytest.mark.parametrize("cycles, decay", [(3, 0.5), (4, 0.8)])
def test_cyclic_has_decaying_peaks(cycles, decay):
    values = factors(120, schedule="cyclic", cycles=cycles, cycle_decay=decay, cycle_warmup=0.25)
    assert rises(values) == cycles - 1
    peaks = [values[c * 120 // cycles: (c + 1) * 120 // cycles].max() for c in range(cycles)]
    assert peaks[0] == pytest.approx(1.0, abs=0.05)
    for before, after in zip(peaks, peaks[1:]):
        assert after == pytest.approx(before * decay, rel=0.05)
