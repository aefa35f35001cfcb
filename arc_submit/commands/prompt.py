"""`python -m arc_submit prompt (--challenges FILE | --dataset NAME) --task ID [--test N] [--model ...]
[--config ...] [--set ...] [--part prompt|answer]`: a task's prompt exactly as the model receives it (the
text after the chat template, which is then tokenized; nothing added inside it), the answer turn of a
train pair as training shows it, and the token counts.

    python -m arc_submit prompt --dataset arc-agi-1-train --task 007bbfb7 --set prompt.format='"arc24-v0"'
    python -m arc_submit prompt --challenges c.json --task 007bbfb7 --part prompt > prompt.txt   # the text alone
"""

from __future__ import annotations

import argparse
import sys

from arc_submit.commands.common import print_json_line
from arc_submit.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.data.tasks import DATASETS

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--challenges", help="Kaggle challenges file, or a folder of per-task JSON")
    source.add_argument("--dataset", choices=list(DATASETS), help="an embedded dataset")
    parser.add_argument("--task", required=True, help="the task id")
    parser.add_argument("--test", type=int, default=0, help="which test input (default 0)")
    parser.add_argument("--model", help="whose tokenizer and chat template (default: the config's model)")
    parser.add_argument("--config", default="cpu", help="preset or TOML file (default cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a setting, e.g. --set prompt.format='\"arc24-v1\"' (repeatable)")
    parser.add_argument("--part", choices=["prompt", "answer"],
                        help="print only this text, exactly, with nothing before or after it")


def main(args: argparse.Namespace) -> int:
    from arc_submit.config import load_config
    from arc_submit.data.tasks import load_dataset, load_tasks
    from arc_submit.model.load import prompt_builder
    from arc_submit.model.resolve import resolve, set_offline

    config = load_config(args.config, args.set, **{"model.name": args.model})
    tasks = {t.task_id: t for t in (load_tasks(args.challenges) if args.challenges else load_dataset(args.dataset))}
    if args.task not in tasks:
        raise UserError(f"--task {args.task}: not in {args.challenges or args.dataset}")
    task = tasks[args.task]
    if not 0 <= args.test < len(task.test):
        raise UserError(f"--test {args.test}: task {args.task} has {len(task.test)} test inputs")
    set_offline()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(config.model.name, config.model.base).base_dir)
    builder = prompt_builder(tokenizer, config.prompt)
    prompt = builder.render_text(task.train, task.test[args.test].input)
    target, demonstrations = task.train[0], task.train[1:] or task.train
    answer = builder.render_text(demonstrations, target.input, target.output).answer
    if args.part:
        sys.stdout.write(prompt.prompt if args.part == "prompt" else answer)
        return 0
    prompt_tokens = len(builder.render(task.train, task.test[args.test].input).prompt_ids)
    answer_tokens = builder.answer_tokens(target.output)
    fitted = builder.fit(task.train, task.test[args.test].input, reserve=answer_tokens)
    print(f"=== prompt of test {args.test} ({prompt_tokens} tokens, format {builder.format.name}) ===")
    sys.stdout.write(prompt.prompt)
    print(f"\n=== answer turn of train[0] ({answer_tokens} tokens; the model writes it after the prompt) ===")
    sys.stdout.write(answer)
    eos = " + an end-of-sequence token (the template ends no turn)" if builder.adds_eos else ""
    print(f"\n=== end of the answer: {builder.end_of_turn!r}{eos}; generation stops at token ids "
          f"{sorted(builder.stop_token_ids)} ===")
    print_json_line({"task": args.task, "test": args.test, "format": builder.format.name, "prompt_tokens": prompt_tokens,
                     "answer_tokens": answer_tokens, "max_seq_len": builder.max_seq_len,
                     "train_pairs_that_fit": fitted.n_train if fitted else 0, "train_pairs": len(task.train)})
    return 0
