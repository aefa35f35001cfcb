"""Learning-rate schedules: each sequence has its shape (warm-up, decay, restarts, decaying cycles)."""

from __future__ import annotations

import numpy as np
import pytest

from arc_submit.config import TTFTConfig
from arc_submit.model.schedules import SCHEDULES, learning_rate_factor


def factors(total: int = 100, **settings) -> np.ndarray:
    config = TTFTConfig(**settings)
    return np.array([learning_rate_factor(config, step, total) for step in range(total)])


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
