"""Learning-rate schedules: from (step, total steps, settings) to a factor of the peak rate.

    factor = schedule_factors(TTFTConfig(schedule="cosine"), 100)
    factors = [factor(step) for step in range(100)]

Step s is the s-th optimizer step (from 0); warm-up rises to the peak at step `warmup`, so no step is
spent at a rate of zero. Linear, constant, cosine and cosine with restarts are `transformers.get_scheduler`'s
own curves, read one step on: the library counts the rate before any step as its step 0 (zero during
warm-up), with `warmup + 1` warm-up steps of `total + 1`, so its step s + 1 is our step s. Only the
cyclic-decaying schedule (the research log's) is written here.

Imports: arc_submit.config; torch and transformers when a library schedule is built.
"""

from __future__ import annotations

from collections.abc import Callable

from arc_submit.config import TTFTConfig

Factors = Callable[[int], float]

# our name -> (transformers.get_scheduler's name, its scheduler-specific settings from ours)
LIBRARY: dict[str, tuple[str, Callable[[TTFTConfig], dict]]] = {
    "linear": ("linear", lambda config: {}),
    "constant": ("constant_with_warmup", lambda config: {}),
    "cosine": ("cosine", lambda config: {}),
    "cosine_restarts": ("cosine_with_restarts", lambda config: {"num_cycles": max(1, config.restarts)}),
}


def warmup_steps(config: TTFTConfig, total: int) -> int:
    return min(total - 1, round(config.warmup_fraction * total)) if total > 1 else 0


def library_factors(config: TTFTConfig, total: int) -> Factors:
    """The library's curve for `config.schedule`, shifted one step (see the module's docstring)."""
    import torch
    from transformers import get_scheduler

    name, specific = LIBRARY[config.schedule]
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup_steps(config, total) + 1,
                              num_training_steps=total + 1, scheduler_specific_kwargs=specific(config))
    curve = scheduler.lr_lambdas[0]
    return lambda step: float(curve(step + 1))


def cyclic_factors(config: TTFTConfig, total: int) -> Factors:
    """`cycles` triangles: each rises over its first `cycle_warmup` share, then falls linearly;
    the peak of cycle c is `cycle_decay ** c`."""
    cycles = max(1, config.cycles)
    length = total / cycles
    rise = config.cycle_warmup

    def factor(step: int) -> float:
        cycle = min(cycles - 1, int(step // length))
        position = (step - cycle * length) / length  # in [0, 1)
        peak = config.cycle_decay**cycle
        if position < rise:
            return peak * (position + 1 / length) / (rise + 1 / length)
        return peak * (1.0 - (position - rise) / (1.0 - rise))

    return factor


SCHEDULES: dict[str, Callable[[TTFTConfig, int], Factors]] = {
    **{name: library_factors for name in LIBRARY},
    "cyclic": cyclic_factors,
}


def schedule_factors(config: TTFTConfig, total: int) -> Factors:
    """The factor of `config.learning_rate` for each optimizer step of `total`."""
    return SCHEDULES[config.schedule](config, total)


def learning_rate_factor(config: TTFTConfig, step: int, total: int) -> float:
    """The factor for optimizer step `step` of `total` (builds the schedule each call: for one-off use)."""
    return schedule_factors(config, total)(step)
