"""`python -m arc_submit plan ...`: expected wall time per task and for the run against the time budget (see arc_submit.studies.plan)."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from arc_submit.commands.common import positive_int
from arc_submit.errors import UserError
from arc_submit.run.costs import Rates
from arc_submit.studies.plan import measured_rates, task_estimate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.data.tasks import DATASETS

    parser.add_argument("--config", default="cpu", help="preset or TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one setting of the config (repeatable)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--challenges", help="Kaggle challenges file")
    source.add_argument("--dataset", choices=list(DATASETS), help="embedded dataset")
    parser.add_argument("--smallest", type=positive_int, help="with --dataset: the N tasks with fewest cells")
    parser.add_argument("--model", help="whose tokenizer counts the tokens (default: the config's model)")
    parser.add_argument("--rates-from", help="a run dir on the target machine to take the rates from")
    parser.add_argument("--train-tokens-per-s", type=float, help="TTFT tokens/s on the target machine (serving the weights included)")
    parser.add_argument("--gen-tokens-per-s", type=float, help="generated tokens/s (sampling and scoring, all prompts together)")
    parser.add_argument("--overhead-s", type=float, default=2.0, help="per-task seconds outside both (default 2)")
    parser.add_argument("--startup-s", type=float, default=120.0, help="model load and engine start (default 120)")
    parser.add_argument("--workers", type=int, default=1, help="parallel workers (one per GPU)")
    parser.add_argument("--time-budget", type=float, help="seconds (default: the config's run.time_budget)")
    parser.add_argument("--memory", action="store_true",
                        help="estimate GPU memory on an L4 and a T4 instead of time (needs no rates)")
    parser.add_argument("--size", action="append", choices=["0.5B", "4B", "8B"],
                        help="with --memory: a published architecture of this size (repeatable; default: the model's)")


def main(args: argparse.Namespace) -> int:
    from arc_submit.config import load_config
    from arc_submit.data.tasks import load_dataset, load_tasks, smallest
    from arc_submit.model.load import prompt_builder
    from arc_submit.model.resolve import resolve, set_offline

    config = load_config(args.config, args.set, **{"model.name": args.model})
    if args.memory:
        return _memory(config, args.size)
    if args.rates_from:
        rates = measured_rates(Path(args.rates_from))
    elif args.train_tokens_per_s and args.gen_tokens_per_s:
        rates = Rates.per_second(args.train_tokens_per_s, args.gen_tokens_per_s, args.overhead_s)
    else:
        raise UserError("give --rates-from RUN_DIR, or both --train-tokens-per-s and --gen-tokens-per-s")
    if not (args.challenges or args.dataset):
        raise UserError("give --challenges FILE or --dataset NAME: the tasks whose time is planned")
    tasks = load_tasks(args.challenges) if args.challenges else load_dataset(args.dataset)
    tasks = smallest(tasks, args.smallest) if args.smallest else tasks
    set_offline()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(config.model.name, config.model.base).base_dir)
    builder = prompt_builder(tokenizer, config.prompt)
    estimates = [task_estimate(task, builder, config, rates) for task in tasks]
    budget = args.time_budget if args.time_budget is not None else config.run.time_budget
    total = args.startup_s + sum(e["seconds"] for e in estimates) / max(1, args.workers)
    too_long = [e["task_id"] for e in estimates if not e["fits"]]
    shown = rates.as_dict()
    print(f"rates: train {shown['train_tokens_per_s']:.0f} tokens/s, generation {shown['gen_tokens_per_s']:.0f} "
          f"tokens/s, overhead {shown['overhead_s']:.1f} s per task")
    for estimate in sorted(estimates, key=lambda e: -e["seconds"])[:10]:
        print(f"  {estimate['task_id']}  {estimate['seconds']:8.1f} s")
    verdict = "no budget set" if not budget else ("fits" if total <= budget else "does NOT fit")
    print(f"{len(tasks)} tasks, {args.workers} workers: about {total / 3600:.2f} h ({total:.0f} s) against "
          f"{budget:.0f} s: {verdict}; {len(too_long)} tasks too long for max_seq_len")
    print(json.dumps({"tasks": len(tasks), "expected_s": total, "budget_s": budget, "fits": bool(budget) and total <= budget,
                      "per_task_mean_s": statistics.fmean([e["seconds"] for e in estimates]), "rates": shown,
                      "too_long": too_long}))
    return 0


def _memory(config, sizes: list[str] | None) -> int:
    """The GPU memory table for published architectures, or for the config's model."""
    from arc_submit.model.resolve import resolve
    from arc_submit.run.memory import REFERENCE, Architecture, format_memory, memory_table

    if sizes:
        architectures = [REFERENCE[size] for size in sizes]
    else:
        architectures = [Architecture.from_config(resolve(config.model.name, config.model.base).base_dir)]
    rows = memory_table(architectures, config)
    print(f"Estimated GPU memory in GiB, with max_seq_len {config.prompt.max_seq_len}, LoRA rank {config.ttft.lora_rank}, dtype "
          f"{config.model.dtype}, gradient checkpointing {config.ttft.gradient_checkpointing}, " + (
              f"KV cache of {config.sampling.kv_cache_prompts} prompts" if config.sampling.kv_cache_prompts else
              f"engine share {config.sampling.gpu_memory_utilization}") + f", engine asleep in training {config.sampling.sleep_while_training}")
    print(format_memory(rows))
    print(json.dumps({"memory": rows}))
    return 0
