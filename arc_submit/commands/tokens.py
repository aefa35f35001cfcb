"""`python -m arc_submit tokens ...`: tokens per task for each encoder with a model's tokenizer, and how many tasks fit (see arc_submit.studies.tokens)."""

from __future__ import annotations

import argparse
import json
import statistics

from arc_submit.data.encoders import create
from arc_submit.errors import UserError
from arc_submit.studies.tokens import ENCODERS, task_tokens


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.data.tasks import DATASETS

    parser.add_argument("--model", default="smollm2-135m", help="whose tokenizer and chat template (default smollm2-135m)")
    parser.add_argument("--encoder", action="append", help="encoder spec (repeatable; default: six common ones)")
    parser.add_argument("--dataset", default="arc-agi-1-eval", choices=list(DATASETS), help="embedded dataset")
    parser.add_argument("--challenges", help="a challenges file instead of an embedded dataset")
    parser.add_argument("--format", default="arc-submit", help="prompt format: a name or a TOML file (default arc-submit)")
    parser.add_argument("--max-seq-len", type=int, action="append", help="count tasks that fit (default 4096, 8192)")


def main(args: argparse.Namespace) -> int:
    from arc_submit.data.prompts import PromptBuilder, load_format
    from arc_submit.data.tasks import load_dataset, load_tasks
    from arc_submit.model.resolve import resolve, set_offline

    set_offline()
    from transformers import AutoTokenizer

    encoders = args.encoder or list(ENCODERS)
    try:
        specs = [create(spec) for spec in encoders]  # a bad spec fails here, before any work
    except ValueError as error:
        raise UserError(f"--encoder: {error}") from None
    limits = args.max_seq_len or [4096, 8192]
    tasks = load_tasks(args.challenges) if args.challenges else load_dataset(args.dataset)
    tokenizer = AutoTokenizer.from_pretrained(resolve(args.model).base_dir)
    rows = []
    for encoder in specs:
        try:
            builder = PromptBuilder(tokenizer, encoder, 10**9, load_format(args.format))
        except ValueError as error:
            raise UserError(f"--format {args.format}: {error}") from None
        counts = [task_tokens(task, builder) for task in tasks]
        row = {"encoder": encoder.spec, "mean": statistics.fmean(counts), "median": statistics.median(counts),
               "max": max(counts)}
        row.update({f"fit_{limit}": sum(count <= limit for count in counts) for limit in limits})
        rows.append(row)
    columns = ["mean", "median", "max", *(f"fit_{limit}" for limit in limits)]
    width = max(len(row["encoder"]) for row in rows)
    print(f"{len(tasks)} tasks, tokenizer of {args.model}; fit_N = tasks whose prompt + answer fit N tokens")
    print("encoder".ljust(width), *(c.rjust(9) for c in columns))
    for row in rows:
        print(row["encoder"].ljust(width), *(f"{row[c]:9.0f}" for c in columns))
    print(json.dumps({"tasks": len(tasks), "rows": rows}))
    return 0
