"""The `python -m arc_submit` commands: thin functions that parse flags and call the library.

    python -m arc_submit --help
    python -m arc_submit validate --challenges challenges.json --submission submission.json

Each command is `add_<name>_arguments(parser)` plus `<name>_command(args) -> exit code`, listed in
COMMANDS. Heavy packages (torch, vLLM) are imported only inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arc_submit.errors import UserError


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def print_json_line(data: dict) -> None:
    """The machine-readable result: the last line of stdout, one JSON object."""
    print(json.dumps(data), flush=True)


def _read(path: str) -> object:
    from arc_submit.files import read_json

    return read_json(path)


# ----------------------------------------------------------------------------- validate


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--challenges", required=True, help="Kaggle challenges file, or a folder of task JSON")
    parser.add_argument("--submission", help="a submission.json to check against the challenges")


def validate_command(args: argparse.Namespace) -> int:
    """Exit 0 when the challenges (and the submission) are valid; else one line per problem, exit 1."""
    from arc_submit.submission import submission_problems, inputs_per_task
    from arc_submit.tasks import load_tasks

    try:
        tasks = load_tasks(args.challenges)
    except UserError as error:
        return _report_invalid(error.problems, args.challenges)
    if args.submission is None:
        print(f"valid: {args.challenges}: {len(tasks)} tasks, {sum(len(t.test) for t in tasks)} test inputs")
        return 0
    try:
        problems = submission_problems(_read(args.submission), inputs_per_task(tasks), args.submission)
    except UserError as error:
        problems = error.problems
    if problems:
        return _report_invalid(problems, args.submission)
    print(f"valid: {args.submission}: {len(tasks)} tasks match {args.challenges}")
    return 0


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (" ..." if len(names) > shown else "")


def _report_invalid(problems: list[str], source: str) -> int:
    for line in problems:
        print(line)
    print(f"invalid: {source}: {len(problems)} problem{'s' * (len(problems) != 1)}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------- score and metrics


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submission", required=True, help="the submission.json to score")
    parser.add_argument("--solutions", required=True, help="solutions file {task_id: [grid, ...]}")
    parser.add_argument("--per-task", action="store_true", help="also print each task's score")


def _load_solutions(path: str) -> dict:
    from arc_submit.tasks import parse_solutions

    return parse_solutions(_read(path), path)


def score_command(args: argparse.Namespace) -> int:
    """Print the official score; the last line of stdout is a JSON object with `score`."""
    from arc_submit.metrics import score
    from arc_submit.submission import entry_problems

    solutions = _load_solutions(args.solutions)
    submission = _read(args.submission)
    if not isinstance(submission, dict):
        return _report_invalid([f"{args.submission}: is not an object of task id -> entries"], args.submission)
    problems = [
        f"{args.submission}: task {task_id}: {problem}"
        for task_id, truths in solutions.items() if task_id in submission
        for problem in entry_problems(submission[task_id], len(truths))
    ]
    if problems:
        return _report_invalid(problems, args.submission)
    missing = [task_id for task_id in solutions if task_id not in submission]
    extra = [task_id for task_id in submission if task_id not in solutions]
    if missing:
        print(f"warning: {args.submission}: {len(missing)} tasks missing, scored 0: {_some(missing)}", file=sys.stderr)
    if extra:
        print(f"warning: {args.submission}: {len(extra)} tasks not in the solutions, ignored: {_some(extra)}",
              file=sys.stderr)
    result = score(submission, solutions)
    per_task = result.pop("per_task")
    if args.per_task:
        for task_id, value in per_task.items():
            print(f"{task_id} {value:.4f}")
    print(f"score {result['score']:.4f}: {result['test_outputs_correct']}/{result['test_outputs']} test outputs, "
          f"{result['tasks_solved']}/{result['tasks']} tasks solved")
    print_json_line(result)
    return 0


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions file {task_id: [[grid, ...], ...]}")
    parser.add_argument("--solutions", required=True, help="solutions file {task_id: [grid, ...]}")


def metrics_command(args: argparse.Namespace) -> int:
    """Print the research metrics; the last line of stdout is a JSON object."""
    from arc_submit.metrics import metric_names, research_metrics
    from arc_submit.submission import predictions_problems

    solutions = _load_solutions(args.solutions)
    predictions = _read(args.predictions)
    counts = {task_id: len(grids) for task_id, grids in solutions.items()}
    problems = predictions_problems(predictions, counts, args.predictions)
    if problems:
        return _report_invalid(problems, args.predictions)
    missing = [task_id for task_id in solutions if task_id not in predictions]
    if missing:
        print(f"warning: {args.predictions}: {len(missing)} tasks have no predictions, counted unanswered: "
              f"{_some(missing)}", file=sys.stderr)
    result = research_metrics(predictions, solutions)
    result.pop("per_task")
    print("  ".join(f"{name} {result[name]:.4f}" for name in metric_names()))
    print_json_line(result)
    return 0


# ----------------------------------------------------------------------------- data


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.tasks import DATASETS

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write an embedded dataset in Kaggle layout")
    export.add_argument("--dataset", required=True, choices=list(DATASETS), help="embedded dataset")
    export.add_argument("--out", required=True, help="folder for challenges.json and solutions.json")
    export.add_argument("--limit", type=positive_int, help="export at most this many tasks")
    export.add_argument("--smallest", action="store_true", help="with --limit: the tasks with the fewest cells")


def data_command(args: argparse.Namespace) -> int:
    from arc_submit.files import write_json
    from arc_submit.tasks import kaggle_layout, load_dataset, smallest

    tasks = load_dataset(args.dataset)
    tasks = smallest(tasks, args.limit) if args.smallest else tasks[: args.limit]
    challenges, solutions = kaggle_layout(tasks)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    write_json(out / "challenges.json", challenges)
    write_json(out / "solutions.json", solutions)
    print(f"wrote {len(tasks)} tasks of {args.dataset} to {out / 'challenges.json'} and {out / 'solutions.json'}")
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


# ----------------------------------------------------------------------------- run

LOCAL_DATASET = "arc-agi-1-eval"
LOCAL_TASKS = 8  # the smallest tasks of LOCAL_DATASET that the `cpu` preset runs within 30 minutes here
DEFAULT_PRESET = "cpu"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from arc_submit.tasks import DATASETS

    parser.add_argument("--seed", type=int, help="drives every random choice (default 0)")
    parser.add_argument("--config", default=DEFAULT_PRESET, help=f"preset name or TOML file (default {DEFAULT_PRESET})")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--challenges", help="Kaggle challenges file, or a folder of per-task JSON")
    source.add_argument("--dataset", choices=list(DATASETS), help="an embedded dataset (solutions included)")
    parser.add_argument("--smallest", type=positive_int, help="with --dataset: only the N tasks with fewest cells")
    parser.add_argument("--solutions", help="solutions file: metrics.json and the score are written when given")
    parser.add_argument("--model", help="alias, transformers folder or LoRA adapter folder (default smollm2-135m)")
    parser.add_argument("--output", help="also write the submission here (e.g. /kaggle/working/submission.json)")
    parser.add_argument("--run-dir", help="where records and outputs go; rerunning it resumes (default runs/...)")
    parser.add_argument("--limit", type=positive_int, help="run only the first N tasks")
    parser.add_argument("--time-budget", type=float, help="seconds for the whole run; work is cut to end in time")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override any setting, e.g. --set ttft.steps=8 (repeatable)")
    parser.add_argument("--shard", help="run only share i of n of the tasks (i/n, e.g. 1/4); merge the run dirs after")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="run the shares in N processes (one per GPU when there are GPUs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.epilog = (f"Without --challenges or --dataset: the {LOCAL_TASKS} smallest tasks of {LOCAL_DATASET}, "
                     "as `make local-submission` runs them.")


def run_tasks_from_args(args: argparse.Namespace):
    """The tasks a run command works on, with their solutions when known."""
    from arc_submit.tasks import load_dataset, load_tasks, smallest

    if args.challenges:
        if args.smallest:
            raise UserError("--smallest works with --dataset; for a challenges file use --limit")
        return load_tasks(args.challenges, args.solutions)
    if args.solutions:
        raise UserError("--solutions needs --challenges (embedded datasets bring their own)")
    if args.dataset:
        tasks = load_dataset(args.dataset)
        return smallest(tasks, args.smallest) if args.smallest else tasks
    return smallest(load_dataset(LOCAL_DATASET), LOCAL_TASKS)


def run_command(args: argparse.Namespace) -> int:
    """The whole pipeline; prints a summary, and the last line of stdout is a JSON object."""
    from arc_submit.config import load_config
    from arc_submit.pipeline import run_pipeline

    config = load_config(args.config, args.set, **{
        "run.seed": args.seed, "model.name": args.model, "run.limit": args.limit, "run.time_budget": args.time_budget,
    })
    from arc_submit.shards import parse_shard

    shard = parse_shard(args.shard) if args.shard else None
    if shard and args.workers > 1:
        raise UserError("--shard and --workers: choose one (--workers makes its own shards)")
    tasks = run_tasks_from_args(args)
    name = Path(args.config).stem
    run_dir = Path(args.run_dir or f"runs/{name}-seed{config.run.seed}")
    output = Path(args.output) if args.output else None
    _log_to(run_dir)
    if args.workers > 1:
        summary = _run_workers(config, tasks, run_dir, output, args)
    else:
        summary = run_pipeline(config, tasks, run_dir, output, progress=not args.quiet, shard=shard)
    print(f"submission: {summary['submission']} ({summary['tasks']} tasks, modes {summary['modes']})")
    if summary["failed_tasks"]:
        print(f"warning: a stage failed in {len(summary['failed_tasks'])} tasks (see run.log): "
              f"{_some(summary['failed_tasks'])}", file=sys.stderr)
    if "metrics" in summary:
        metrics = summary["metrics"]
        print(f"score {metrics['score']:.4f}  " + "  ".join(
            f"{name} {metrics[name]:.3f}" for name in ("pass_n", "vote_1", "vote_2", "accuracy", "unanswered")))
    print_json_line(summary)
    return 0


def _run_workers(config, tasks, run_dir: Path, output: Path | None, args: argparse.Namespace) -> dict:
    """The parent of --workers: the run dir with its config and tasks, a fallback submission at once,
    then the workers (see arc_submit.shards)."""
    from arc_submit.rundir import RunDir
    from arc_submit.shards import run_workers

    parent = RunDir(run_dir)
    parent.prepare(config)
    parent.save_tasks(tasks)
    parent.write_outputs(tasks, {}, output)
    summary = run_workers(run_dir / "config.toml", run_dir, args.workers, config.run.threads, output, args.quiet)
    failed = [code for code in summary["worker_exit_codes"] if code != 0]
    if failed:
        print(f"warning: {len(failed)} workers exited with an error (see {run_dir}/worker-*/run.log)", file=sys.stderr)
    return {"tasks": summary["tasks"], "ran": summary["merged"], "workers": args.workers,
            "modes": summary["modes"], "failed_tasks": summary["failed_tasks"],
            "worker_exit_codes": summary["worker_exit_codes"],
            "submission": str(output or run_dir / "submission.json"),
            **({"metrics": summary["metrics"]} if "metrics" in summary else {})}


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", help="run dirs of shards of one run (--shard i/n)")
    parser.add_argument("--run-dir", required=True, help="the merged run dir (submission, predictions, metrics)")
    parser.add_argument("--output", help="also write the merged submission here")


def merge_command(args: argparse.Namespace) -> int:
    """Join shard run dirs into one run dir and one submission; the last line of stdout is JSON."""
    from arc_submit.shards import merge_run_dirs

    sources = [Path(d) for d in args.run_dirs]
    missing = [str(d) for d in sources if not d.is_dir()]
    if missing:
        raise UserError(f"{missing[0]}: no such run dir")
    summary = merge_run_dirs(sources, Path(args.run_dir), Path(args.output) if args.output else None)
    print(f"merged {summary['merged']} of {summary['tasks']} tasks into {args.run_dir}")
    print_json_line(summary)
    return 0


def _log_to(run_dir: Path) -> None:
    import logging

    run_dir.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("arc_submit")
    logger.setLevel(logging.DEBUG)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    file = logging.FileHandler(run_dir / "run.log")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers[:] = [console, file]
    logger.propagate = False


# ----------------------------------------------------------------------------- dispatch

def _lazy(module: str, name: str) -> tuple[Callable, Callable]:
    """(add_arguments, run) of a command that lives in another module, imported when used."""
    import importlib

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(module), f"add_{name}_arguments")(parser)

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), f"{name}_command")(args)

    return add_arguments, run


COMMANDS: dict[str, Command] = {
    "run": Command("the whole pipeline: TTFT, merge, sample, vote, submission.json (the default command)",
                   add_run_arguments, run_command),
    "validate": Command("check a challenges file, and a submission against it", add_validate_arguments,
                        validate_command),
    "score": Command("the official score of a submission", add_score_arguments, score_command),
    "metrics": Command("the research metrics of a predictions file", add_metrics_arguments, metrics_command),
    "data": Command("embedded ARC datasets: export them in Kaggle layout", add_data_arguments, data_command),
    "merge": Command("join the run dirs of shards into one submission", add_merge_arguments, merge_command),
    "evaluate": Command("run each model or checkpoint and compare their metrics (table, CSV, plot)",
                        *_lazy("arc_submit.evaluate", "evaluate")),
    "variability": Command("the same submission once per seed: the spread of the score",
                           *_lazy("arc_submit.evaluate", "variability")),
    "report": Command("a self-contained HTML page of a run dir", *_lazy("arc_submit.report", "report")),
    "render": Command("PNG pictures of tasks, with attempts and truth", *_lazy("arc_submit.report", "render")),
    "tokens": Command("tokens per task for each encoder with a model's tokenizer", *_lazy("arc_submit.tokens", "tokens")),
    "bench": Command("speed of sampling, TTFT and the pipeline, each against a plain baseline",
                     *_lazy("arc_submit.bench", "bench")),
    "plan": Command("expected wall time per task and for the run, against the time budget",
                    *_lazy("arc_submit.plan", "plan")),
}
DEFAULT_COMMAND = "run"


def make_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `only` one (so a command imports only its own module)."""
    parser = argparse.ArgumentParser(
        prog="python -m arc_submit",
        description="arc-submit: turn a language model into an ARC Prize submission, offline.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        if only is None or name == only:
            sub = commands.add_parser(name, help=command.help, description=command.help)
            command.add_arguments(sub)
            sub.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if DEFAULT_COMMAND in COMMANDS and (not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, DEFAULT_COMMAND)
    args = make_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        for line in error.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
