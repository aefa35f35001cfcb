"""Learning-rate schedules: pure functions from (step, total steps, settings) to a factor of the peak rate.

    factors = [learning_rate_factor(TTFTConfig(schedule="cyclic"), step, 100) for step in range(100)]

Step s is the s-th optimizer step (from 0); warm-up rises to the peak at step `warmup`, so no step is
spent at a rate of zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from arc_submit.config import TTFTConfig


def _warmup_steps(config: TTFTConfig, total: int) -> int:
    return min(total - 1, round(config.warmup_fraction * total)) if total > 1 else 0


def _decay_progress(step: int, total: int, warmup: int) -> float:
    """0 at the first step after warm-up, approaching 1 at the last step."""
    return (step - warmup) / max(1, total - warmup)


def linear(config: TTFTConfig, step: int, total: int) -> float:
    warmup = _warmup_steps(config, total)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 1.0 - _decay_progress(step, total, warmup)


def constant(config: TTFTConfig, step: int, total: int) -> float:
    warmup = _warmup_steps(config, total)
    return (step + 1) / (warmup + 1) if step < warmup else 1.0


def cosine(config: TTFTConfig, step: int, total: int) -> float:
    warmup = _warmup_steps(config, total)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1.0 + math.cos(math.pi * _decay_progress(step, total, warmup)))


def cosine_restarts(config: TTFTConfig, step: int, total: int) -> float:
    """Cosine decay restarted `restarts` times: each cycle falls from the peak towards zero."""
    warmup = _warmup_steps(config, total)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    cycle_progress = (_decay_progress(step, total, warmup) * max(1, config.restarts)) % 1.0
    return 0.5 * (1.0 + math.cos(math.pi * cycle_progress))


def cyclic(config: TTFTConfig, step: int, total: int) -> float:
    """`cycles` triangles: each rises over its first `cycle_warmup` share, then falls linearly;
    the peak of cycle c is `cycle_decay ** c`."""
    cycles = max(1, config.cycles)
    length = total / cycles
    cycle = min(cycles - 1, int(step // length))
    position = (step - cycle * length) / length  # in [0, 1)
    peak = config.cycle_decay**cycle
    rise = config.cycle_warmup
    if position < rise:
        return peak * (position + 1 / length) / (rise + 1 / length)
    return peak * (1.0 - (position - rise) / (1.0 - rise))


SCHEDULES: dict[str, Callable[[TTFTConfig, int, int], float]] = {
    "linear": linear,
    "constant": constant,
    "cosine": cosine,
    "cosine_restarts": cosine_restarts,
    "cyclic": cyclic,
}


def learning_rate_factor(config: TTFTConfig, step: int, total: int) -> float:
    """The factor of `config.learning_rate` for optimizer step `step` of `total`."""
    return SCHEDULES[config.schedule](config, step, total)
