"""Will it fit? Expected wall time per task and for the whole run against the time budget, from
token counts of the actual tasks and rates measured on the target machine (a run dir) or given; the
cost model is the time budget's own (arc_submit.run.costs).

    python -m arc_submit plan --config kaggle-l4x4 --challenges arc-agi_test_challenges.json \
        --train-tokens-per-s 4000 --gen-tokens-per-s 2500 --workers 4
    python -m arc_submit plan --config cpu --dataset arc-agi-1-eval --smallest 8 --rates-from runs/local-submission
"""

from __future__ import annotations

from pathlib import Path

from arc_submit.errors import UserError
from arc_submit.run.costs import Meter, Rates, task_work


def measured_rates(run_dir: Path) -> Rates:
    """The per-token rates of a finished run's tasks, measured as the time budget measures them
    (arc_submit.run.costs)."""
    from arc_submit.run.rundir import RunDir

    meter = Meter()
    for record in RunDir(run_dir).records().values():
        meter.add_record(record)
    if not meter.train_tokens or not meter.gen_tokens:
        raise UserError(f"--rates-from {run_dir}: needs finished tasks that trained and sampled")
    return meter.rates()


def task_estimate(task, builder, config, rates: Rates) -> dict:
    """Seconds a task is expected to take: its TTFT steps and its K views of S answers, in tokens, at `rates`."""
    work = task_work(task, builder, config)
    if work is None:
        return {"task_id": task.task_id, "fits": False, "seconds": 0.0}
    steps, views = config.ttft.steps, config.sampling.augmentations
    return {"task_id": task.task_id, "fits": True, "train_tokens": round(steps * work.train_tokens_per_step),
            "gen_tokens": round(views * work.gen_tokens_per_view), "seconds": rates.seconds(work, steps, views)}
