"""Will it fit? Expected wall time per task and for the whole run against the time budget, from
token counts of the actual tasks and rates measured on the target machine (a run dir) or given.

    python -m arc_submit plan --config kaggle-l4x4 --challenges arc-agi_test_challenges.json \
        --train-tokens-per-s 4000 --gen-tokens-per-s 2500 --workers 4
    python -m arc_submit plan --config cpu --dataset arc-agi-1-eval --smallest 8 --rates-from runs/local-submission
"""

from __future__ import annotations

import statistics
from pathlib import Path

from arc_submit.errors import UserError


def measured_rates(run_dir: Path) -> dict[str, float]:
    """Training tokens/s (in optimizer steps), new tokens/s (in generation) and per-task overhead seconds
    of a finished run."""
    from arc_submit.run.rundir import RunDir, work_seconds

    records = list(RunDir(run_dir).records().values())
    trained = [(r.ttft.tokens, work_seconds(r)[0]) for r in records if r.ttft and r.ttft.steps]
    generated = [(r.generated_tokens, work_seconds(r)[1]) for r in records if r.timings.get("sample_s")]
    if not trained or not generated:
        raise UserError(f"--rates-from {run_dir}: needs finished tasks that trained and sampled")
    overhead = [r.timings["total_s"] - sum(work_seconds(r)) for r in records if r.timings.get("sample_s")]
    return {"train_tokens_per_s": sum(t for t, _ in trained) / sum(s for _, s in trained),
            "gen_tokens_per_s": sum(t for t, _ in generated) / sum(s for _, s in generated),
            "overhead_s": statistics.fmean(overhead)}


def task_estimate(task, builder, config, rates: dict[str, float]) -> dict:
    """Seconds a task is expected to take: TTFT steps at its mean example length, then K x S answers."""
    from arc_submit.predict.candidates import answer_bound

    examples = []
    for index, pair in enumerate(task.train):
        demonstrations = [p for i, p in enumerate(task.train) if i != index] or [pair]
        example = builder.fit(demonstrations, pair.input, pair.output)
        if example is not None:
            examples.append(example.length)
    if not examples:
        return {"task_id": task.task_id, "fits": False, "seconds": 0.0}
    ttft = config.ttft
    train_tokens = ttft.steps * ttft.batch_size * ttft.gradient_accumulation * statistics.fmean(examples)
    answer = statistics.fmean([builder.answer_tokens(p.output) for p in task.train])  # a typical answer's length
    bound = answer_bound(builder, config.sampling)
    answers = len(task.test) * config.sampling.augmentations * config.sampling.samples
    gen_tokens = answers * min(bound, answer)
    seconds = train_tokens / rates["train_tokens_per_s"] + gen_tokens / rates["gen_tokens_per_s"] + rates["overhead_s"]
    return {"task_id": task.task_id, "fits": True, "train_tokens": round(train_tokens), "gen_tokens": round(gen_tokens),
            "seconds": seconds}
