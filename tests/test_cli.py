"""The command line as a whole (cli.py, commands/common.py, errors.py), as a user runs it: help and examples for
every command, unknown commands and bad input refused in one line, problems folded by kind, the light commands
importing no torch, and library warnings kept off the console. Each command's own behaviour is tested beside its
library (validate: test_submission.py and test_tasks.py; score and metrics: test_metrics.py; data export:
test_tasks.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from arc_submit.cli import COMMANDS
from tests.helpers.cli import run_cli


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("validate", "score", "metrics", "data"):
        assert command in result.stdout


def test_a_bare_command_line_prints_the_help_and_runs_nothing(tmp_path):
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m arc_submit")
    assert "validate" in result.stdout and not list(tmp_path.iterdir())  # no run dir, no submission


@pytest.mark.parametrize("typo, hint", [("evalute", "did you mean 'evaluate'?"), ("frobnicate", "")])
def test_an_unknown_command_is_one_line_naming_the_known_ones(typo, hint):
    result = run_cli(typo, "--model", "x")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and f"unknown command '{typo}'" in lines[0]
    assert hint in lines[0] and "validate, score, metrics" in lines[0] and "worker" not in lines[0]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0 and "usage: python -m arc_submit " + command in result.stdout


def test_light_commands_import_no_torch(tiny_challenges, tmp_path):
    challenges, solutions = tiny_challenges
    submission = tmp_path / "submission.json"
    submission.write_text(json.dumps({"aaaa0001": [{"attempt_1": [[0, 2]], "attempt_2": []}]}))
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps({"aaaa0001": [[[[0, 2]]]]}))
    for argv in (["validate", "--challenges", str(challenges)],
                 ["score", "--submission", str(submission), "--solutions", str(solutions)],
                 ["metrics", "--predictions", str(predictions), "--solutions", str(solutions)],
                 ["config", "--config", "kaggle-l4x4+nvarc", "--diff"]):
        code = (
            f"import sys; from arc_submit.cli import main; assert main({argv!r}) == 0; "
            "heavy = [m for m in ('torch', 'transformers', 'vllm', 'numpy.linalg') if m in sys.modules]; "
            "assert not heavy[:3], heavy"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, (argv[0], result.stderr[-2000:])


def test_run_help_lists_the_promised_flags():
    result = run_cli("run", "--help")
    assert result.returncode == 0
    for flag in ("--seed", "--config", "--challenges", "--model", "--solutions", "--output", "--run-dir", "--limit",
                 "--time-budget"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--model", "/no/such/model", "--dataset", "arc-agi-1-eval", "--smallest", "1"], "--model /no/such/model"),
        (["--config", "nonexistent-preset"], "not a preset"),
        (["--set", "ttft.stepz=3"], "unknown setting 'stepz'"),
        (["--set", "sampling.samples=4"], "greedy decoding"),
        (["--challenges", "/no/file.json"], "/no/file.json: no such file"),
    ],
)
def test_run_refuses_bad_input_in_one_line(tmp_path, args, fragment):
    result = run_cli(*args, "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_the_removed_unsloth_backend_is_refused_naming_the_option(tmp_path):
    result = run_cli("--set", 'ttft.backend="unsloth"', "--dataset", "arc-agi-1-eval", "--smallest", "1",
                     "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "ttft.backend = 'unsloth' was removed" in result.stderr
    assert "set ttft.backend = 'peft'" in result.stderr and "Traceback" not in result.stderr


def test_summarize_gives_one_line_per_kind_and_folds_the_rest():
    from arc_submit.errors import summarize

    cells = [f"f.json: task t{i}: [0].attempt_1 row {i % 30}: is int {i % 10}, not a list of cells" for i in range(5000)]
    keys = [f"f.json: task t{i}: [0]: unknown key 'x{i}'" for i in range(40)]
    assert summarize(cells[:3]) == cells[:3]
    assert summarize(cells) == [cells[0] + " (and 4999 more like it)"]
    assert summarize(cells + keys) == [cells[0] + " (and 4999 more like it)", keys[0] + " (and 39 more like it)"]
    three = summarize(cells + keys + ["f.json: task t1: missing", "f.json: task t2: missing"], most=2)
    assert len(three) == 2 and three[1].startswith("... and 42 more problems of 2 other kinds, e.g. f.json: task t0: [0]")


COUNTED = [["data", "export", "--out", "x"], ["run"], ["train", "--out", "x"], ["evaluate", "--model", "x"],
           ["variability", "--seeds", "0"]]


@pytest.mark.parametrize("command, flag", [(c, f) for c in COUNTED for f in ("--smallest", "--limit")]
                         + [(["plan"], "--smallest")])
def test_zero_tasks_is_refused_by_every_command(command, flag):
    result = run_cli(*command, "--dataset", "arc-agi-1-eval", flag, "0")
    assert result.returncode == 2 and f"argument {flag}: 0 is not positive" in result.stderr


def test_library_warnings_go_to_run_log_not_the_console(tmp_path):
    script = ("import sys, warnings; from pathlib import Path; from arc_submit.commands.common import log_to; "
              "log_to(Path(sys.argv[1])); warnings.warn('an odd library default', FutureWarning); "
              "import logging; logging.getLogger('arc_submit').info('task line')")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "task line" in result.stderr and "odd library default" not in result.stderr
    log = (tmp_path / "run.log").read_text()
    assert "FutureWarning: an odd library default" in log and "task line" in log


def test_benchs_library_warnings_go_to_a_file_and_are_counted(tmp_path):
    """bench's console keeps the measures: the libraries' warnings go to a file, and how many is said."""
    script = ("import sys, warnings; from pathlib import Path; from arc_submit.commands.common import warnings_to; "
              "caught = warnings_to(Path(sys.argv[1])); warnings.warn('an odd library default', FutureWarning); "
              "warnings.warn('another', UserWarning); print(caught.written)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "w.log")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "odd library default" not in result.stderr and result.stdout.strip() == "2"
    assert "FutureWarning: an odd library default" in (tmp_path / "w.log").read_text()


@pytest.mark.parametrize("command", [name for name in COMMANDS if name != "worker"])
def test_each_help_ends_with_real_examples_that_parse(command):
    import shlex

    from arc_submit.cli import DEFAULT_COMMAND, EXAMPLES, make_parser

    assert EXAMPLES[command]
    for example in EXAMPLES[command]:
        argv = shlex.split(example)
        if argv[0] not in COMMANDS:
            argv.insert(0, DEFAULT_COMMAND)
        assert argv[0] == command
        make_parser(command).parse_args(argv)  # argparse exits (a failure here) if the example is wrong
    result = run_cli(command, "--help")
    assert result.stdout.rstrip().splitlines()[-1] == f"  python -m arc_submit {EXAMPLES[command][-1]}"
