"""Will it fit? Expected wall time per task and for the whole run against the time budget, from
token counts of the actual tasks and rates measured on the target machine (a run dir) or given.

    python -m arc_submit plan --config kaggle-l4x4 --challenges arc-agi_test_challenges.json \
        --train-tokens-per-s 4000 --gen-tokens-per-s 2500 --workers 4
    python -m arc_submit plan --config cpu --dataset arc-agi-1-eval --smallest 8 --rates-from runs/local-submission
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from arc_submit.errors import UserError


def measured_rates(run_dir: Path) -> dict[str, float]:
    """Training tokens/s (in optimizer steps), new tokens/s (in generation) and per-task overhead seconds
    of a finished run."""
    from arc_submit.files import read_json
    from arc_submit.rundir import work_seconds

    records = [read_json(p) for p in sorted((run_dir / "tasks").glob("*.json"))]
    trained = [(r["ttft"]["tokens"], work_seconds(r)[0]) for r in records if r.get("ttft") and r["ttft"]["steps"]]
    generated = [(r.get("generated_tokens", 0), work_seconds(r)[1]) for r in records if r["timings"].get("sample_s")]
    if not trained or not generated:
        raise UserError(f"--rates-from {run_dir}: needs finished tasks that trained and sampled")
    overhead = [r["timings"]["total_s"] - sum(work_seconds(r)) for r in records if r["timings"].get("sample_s")]
    return {"train_tokens_per_s": sum(t for t, _ in trained) / sum(s for _, s in trained),
            "gen_tokens_per_s": sum(t for t, _ in generated) / sum(s for _, s in generated),
            "overhead_s": statistics.fmean(overhead)}


def task_estimate(task, builder, config, rates: dict[str, float]) -> dict:
    """Seconds a task is expected to take: TTFT steps at its mean example length, then K x S answers."""
    from arc_submit.sampling import max_new_tokens

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
    bound = max_new_tokens(task, builder, config.sampling)
    answers = len(task.test) * config.sampling.augmentations * config.sampling.samples
    gen_tokens = answers * min(bound, answer)
    seconds = train_tokens / rates["train_tokens_per_s"] + gen_tokens / rates["gen_tokens_per_s"] + rates["overhead_s"]
    return {"task_id": task.task_id, "fits": True, "train_tokens": round(train_tokens), "gen_tokens": round(gen_tokens),
            "seconds": seconds}


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.tasks import DATASETS

    parser.add_argument("--config", default="cpu", help="preset or TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--challenges", help="Kaggle challenges file")
    source.add_argument("--dataset", choices=list(DATASETS), help="embedded dataset")
    parser.add_argument("--smallest", type=int, help="with --dataset: the N tasks with fewest cells")
    parser.add_argument("--model", help="whose tokenizer counts the tokens (default: the config's model)")
    parser.add_argument("--rates-from", help="a run dir on the target machine to take the rates from")
    parser.add_argument("--train-tokens-per-s", type=float, help="training rate on the target machine")
    parser.add_argument("--gen-tokens-per-s", type=float, help="generation rate (new tokens/s, all prompts together)")
    parser.add_argument("--overhead-s", type=float, default=2.0, help="per-task seconds outside both (default 2)")
    parser.add_argument("--startup-s", type=float, default=120.0, help="model load and engine start (default 120)")
    parser.add_argument("--workers", type=int, default=1, help="parallel workers (one per GPU)")
    parser.add_argument("--time-budget", type=float, help="seconds (default: the config's run.time_budget)")


def plan_command(args: argparse.Namespace) -> int:
    from arc_submit.config import load_config
    from arc_submit.encoders import create
    from arc_submit.models import resolve, set_offline
    from arc_submit.prompts import PromptBuilder
    from arc_submit.tasks import load_dataset, load_tasks, smallest

    config = load_config(args.config, args.set, **{"model.name": args.model})
    if args.rates_from:
        rates = measured_rates(Path(args.rates_from))
    elif args.train_tokens_per_s and args.gen_tokens_per_s:
        rates = {"train_tokens_per_s": args.train_tokens_per_s, "gen_tokens_per_s": args.gen_tokens_per_s,
                 "overhead_s": args.overhead_s}
    else:
        raise UserError("give --rates-from RUN_DIR, or both --train-tokens-per-s and --gen-tokens-per-s")
    tasks = load_tasks(args.challenges) if args.challenges else load_dataset(args.dataset)
    tasks = smallest(tasks, args.smallest) if args.smallest else tasks
    set_offline()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(config.model.name, config.model.base).base_dir)
    builder = PromptBuilder(tokenizer, create(config.prompt.encoder), config.prompt.max_seq_len, config.prompt.system_prompt)
    estimates = [task_estimate(task, builder, config, rates) for task in tasks]
    budget = args.time_budget if args.time_budget is not None else config.run.time_budget
    total = args.startup_s + sum(e["seconds"] for e in estimates) / max(1, args.workers)
    too_long = [e["task_id"] for e in estimates if not e["fits"]]
    print(f"rates: train {rates['train_tokens_per_s']:.0f} tokens/s, generation {rates['gen_tokens_per_s']:.0f} "
          f"tokens/s, overhead {rates['overhead_s']:.1f} s per task")
    for estimate in sorted(estimates, key=lambda e: -e["seconds"])[:10]:
        print(f"  {estimate['task_id']}  {estimate['seconds']:8.1f} s")
    verdict = "no budget set" if not budget else ("fits" if total <= budget else "does NOT fit")
    print(f"{len(tasks)} tasks, {args.workers} workers: about {total / 3600:.2f} h ({total:.0f} s) against "
          f"{budget:.0f} s: {verdict}; {len(too_long)} tasks too long for max_seq_len")
    print(json.dumps({"tasks": len(tasks), "expected_s": total, "budget_s": budget, "fits": bool(budget) and total <= budget,
                      "per_task_mean_s": statistics.fmean([e["seconds"] for e in estimates]), "rates": rates,
                      "too_long": too_long}))
    return 0
