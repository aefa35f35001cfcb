"""`python -m arc_submit COMMAND ...`: a dispatch table over one module per command in
`arc_submit/commands/`, imported only when its command runs (so light commands start without torch).

    python -m arc_submit --help          # (or no arguments at all): the commands
    python -m arc_submit --seed 0 ...    # a command line that starts with a flag runs the pipeline
    python -m arc_submit validate --challenges challenges.json --submission submission.json
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

from arc_submit.errors import UserError, summarize

# command -> one line of help; each lives in arc_submit/commands/<command>.py (add_arguments, main)
COMMANDS: dict[str, str] = {
    "run": "the whole pipeline: TTFT, merge, sample, vote, submission.json (the default command)",
    "validate": "check a challenges file, and a submission against it",
    "score": "the official score of a submission",
    "metrics": "the research metrics of a predictions file",
    "data": "embedded ARC datasets: export them in Kaggle layout",
    "merge": "join the run dirs of shards into one submission",
    "train": "fine-tune a model on ARC tasks with TTFT's training code: checkpoints, validation loss, TensorBoard",
    "study": "train and evaluate each setting of a grid (--vary): one table and one page",
    "evaluate": "run each model or checkpoint and compare their metrics (table, CSV, plot)",
    "variability": "the same submission once per seed: the spread of the score",
    "report": "a self-contained HTML page of a run dir",
    "render": "PNG pictures of tasks, with attempts and truth",
    "prompt": "a task's prompt and answer turn exactly as the model sees them, with token counts",
    "tokens": "tokens per task for each encoder with a model's tokenizer",
    "bench": "speed of sampling, TTFT and the pipeline, each against a plain baseline",
    "plan": "expected wall time per task and for the run, against the time budget",
    "config": "every setting with its value, default and help (--diff: only what the preset changes)",
    "worker": "(internal) one worker process of --workers, started by the run itself",
}
DEFAULT_COMMAND = "run"

# command -> real command lines, shown at the end of its --help (a test parses each one)
EXAMPLES: dict[str, list[str]] = {
    "run": ["--seed 0 --config smoke --dataset arc-agi-2-eval --smallest 2",
            "--config kaggle-l4x4 --model /kaggle/input/my-model --challenges arc-agi_test_challenges.json "
            "--output submission.json --time-budget 41400"],
    "validate": ["validate --challenges arc-agi_test_challenges.json --submission submission.json"],
    "score": ["score --submission runs/cpu-seed0/submission.json --solutions data/local/solutions.json"],
    "metrics": ["metrics --predictions runs/cpu-seed0/predictions.json --solutions data/local/solutions.json"],
    "data": ["data export --dataset arc-agi-1-eval --smallest 8 --out data/local"],
    "merge": ["merge runs/shard0 runs/shard1 --run-dir runs/merged --output submission.json"],
    "train": ["train --dataset arc-agi-1-train --smallest 16 --out runs/train --set train.steps=200"],
    "study": ['study --vary "train.learning_rate=1e-4;2e-4" --dataset arc-agi-1-train --smallest 16 '
              "--eval-dataset arc-agi-1-eval --eval-smallest 8 --out runs/study"],
    "evaluate": ["evaluate --model runs/train/checkpoint-100 --model runs/train/checkpoint-200 "
                 "--dataset arc-agi-1-eval --smallest 8 --out runs/eval"],
    "variability": ["variability --seeds 0 1 2 --config smoke --dataset arc-agi-2-eval --smallest 2"],
    "report": ["report runs/cpu-seed0"],
    "render": ["render --challenges data/local/challenges.json --solutions data/local/solutions.json "
               "--submission runs/cpu-seed0/submission.json --out runs/pictures"],
    "prompt": ["prompt --dataset arc-agi-1-eval --task 00576224 --part prompt"],
    "tokens": ["tokens --dataset arc-agi-2-eval --max-seq-len 8192"],
    "bench": ["bench --config cpu --pipeline-tasks 2"],
    "plan": ["plan --config cpu --dataset arc-agi-1-eval --smallest 8 --rates-from runs/local-submission",
             "plan --memory --config kaggle-l4x4 --size 4B"],
    "config": ["config --config kaggle-l4x4+nvarc --diff", "config --config cpu --set ttft.steps=8 --set run.seed=1",
               "config --markdown"],
    "worker": [],
}


def command_module(name: str):
    return importlib.import_module(f"arc_submit.commands.{name}")


def make_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `only` one (so a command imports only its own module)."""
    parser = argparse.ArgumentParser(
        prog="python -m arc_submit",
        description="arc-submit: turn a language model into an ARC Prize submission, offline.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        if only is None or name == only:
            sub = commands.add_parser(name, help=help_text, description=help_text,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
            module = command_module(name)
            module.add_arguments(sub)
            examples = "".join(f"\n  python -m arc_submit {line}" for line in EXAMPLES[name])
            sub.epilog = "\n\n".join(part for part in (sub.epilog, examples and f"examples:{examples}") if part)
            sub.set_defaults(handler=module.main)
        else:
            commands.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # a bare command line shows what there is; a run needs at least a flag (--seed N)
        make_parser("-").print_help()
        return 0
    if not argv[0].startswith("-") and argv[0] not in COMMANDS:
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        print(f"error: unknown command {argv[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
              + f"; the commands: {', '.join(name for name in COMMANDS if name != 'worker')}", file=sys.stderr)
        return 2
    if argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, DEFAULT_COMMAND)
    only = argv[0] if argv[0] in COMMANDS else "-"
    args = make_parser(only).parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        for line in summarize(error.problems):
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
