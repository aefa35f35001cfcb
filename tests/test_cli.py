"""The light commands end to end, as a user runs them: output, exit codes, and no torch imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from arc_submit.cli import COMMANDS
from tests.conftest import run_cli


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


def test_validate_exit_codes(tiny_challenges, tmp_path):
    challenges, _ = tiny_challenges
    assert run_cli("validate", "--challenges", str(challenges)).returncode == 0
    good = {"aaaa0001": [{"attempt_1": [[0, 2]], "attempt_2": []}],
            "bbbb0002": [{"attempt_1": [[3]], "attempt_2": []}, {"attempt_1": [], "attempt_2": [[1]]}]}
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(good))
    assert run_cli("validate", "--challenges", str(challenges), "--submission", str(path)).returncode == 0
    del good["bbbb0002"][1]
    good["aaaa0001"][0]["attempt_1"] = [[1], [1, 2]]
    path.write_text(json.dumps(good))
    result = run_cli("validate", "--challenges", str(challenges), "--submission", str(path))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and "task aaaa0001" in lines[0] and "task bbbb0002" in lines[1]
    assert "Traceback" not in result.stderr


def test_validate_reports_bad_challenges_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"t9": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}}))
    result = run_cli("validate", "--challenges", str(bad))
    assert result.returncode == 1
    assert "bad.json: task t9: train[0].input row 1" in result.stdout and "Traceback" not in result.stderr
    missing = run_cli("validate", "--challenges", str(tmp_path / "none.json"))
    assert missing.returncode != 0 and "none.json: no such file" in missing.stdout


def test_score_prints_json_last(tiny_challenges, tmp_path):
    _, solutions = tiny_challenges
    submission = {"aaaa0001": [{"attempt_1": [[9]], "attempt_2": [[0, 2]]}],
                  "bbbb0002": [{"attempt_1": [[3, 3]], "attempt_2": []}, {"attempt_1": [[4]], "attempt_2": []}]}
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(submission))
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["score"] == 0.75
    del submission["bbbb0002"]
    path.write_text(json.dumps(submission))
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert json.loads(result.stdout.strip().splitlines()[-1])["score"] == 0.5
    assert "bbbb0002" in result.stderr and "scored 0" in result.stderr


def test_score_refuses_a_malformed_submission(tiny_challenges, tmp_path):
    _, solutions = tiny_challenges
    path = tmp_path / "submission.json"
    path.write_text(json.dumps({"aaaa0001": [{"attempt_1": [[1, 2], [3]], "attempt_2": []}]}))
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert result.returncode == 2 and "task aaaa0001" in result.stderr and "ragged" in result.stderr
    path.write_text("{not json")
    result = run_cli("score", "--submission", str(path), "--solutions", str(solutions))
    assert result.returncode == 2 and "submission.json: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_prints_json_last(tiny_challenges, tmp_path):
    _, solutions = tiny_challenges
    predictions = {"aaaa0001": [[[[0, 2]], [[0, 2]], []]], "bbbb0002": [[[[3, 3]]], [[[4]]]]}
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(predictions))
    result = run_cli("metrics", "--predictions", str(path), "--solutions", str(solutions))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["pass_n"] == pytest.approx(0.75)
    assert metrics["unanswered"] == pytest.approx((1 / 3) / 2)
    assert metrics["accuracy"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_data_export_writes_kaggle_layout(tmp_path):
    result = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--out", str(tmp_path / "out"),
                     "--limit", "2", "--smallest")
    assert result.returncode == 0, result.stderr
    challenges = json.loads((tmp_path / "out" / "challenges.json").read_text())
    solutions = json.loads((tmp_path / "out" / "solutions.json").read_text())
    assert len(challenges) == 2 and set(solutions) == set(challenges)
    assert run_cli("validate", "--challenges", str(tmp_path / "out" / "challenges.json")).returncode == 0
    bad = run_cli("data", "export", "--dataset", "arc-agi-9", "--out", str(tmp_path))
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


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


def export_eval(tmp_path):
    result = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path / "challenges.json", tmp_path / "solutions.json"


def test_a_file_in_the_wrong_place_is_named_as_such_in_a_few_lines(tmp_path):
    """A solutions file given as predictions, as a submission or as challenges; challenges as solutions;
    the competition's folder as challenges: each a line or two naming what the file looks like."""
    challenges, solutions = export_eval(tmp_path)
    (tmp_path / "arc-agi_test_challenges.json").write_text(challenges.read_text())
    cases = [(("metrics", "--predictions", str(solutions), "--solutions", str(solutions)), 2, "looks like a solutions file"),
             (("validate", "--challenges", str(challenges), "--submission", str(solutions)), 1, "not a submission file"),
             (("score", "--submission", str(solutions), "--solutions", str(solutions)), 2, "not a submission file"),
             (("score", "--submission", str(solutions), "--solutions", str(challenges)), 2, "looks like a challenges file"),
             (("validate", "--challenges", str(solutions)), 1, "not a challenges file"),
             (("validate", "--challenges", str(tmp_path)), 1, "is a competition's folder")]
    for args, code, fragment in cases:
        result = run_cli(*args)
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert result.returncode == code and len(lines) <= 3 and fragment in lines[0], (args, lines)
        assert "Traceback" not in result.stderr


def test_thousands_of_problems_are_a_few_lines_with_counts(tmp_path):
    challenges, _ = export_eval(tmp_path)
    tasks = json.loads(challenges.read_text())
    bad = {task_id: [{"attempt_1": [["x"]], "attempt_2": "no"} for _ in task["test"]] for task_id, task in tasks.items()}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = run_cli("validate", "--challenges", str(challenges), "--submission", str(tmp_path / "bad.json"))
    out = result.stdout.strip().splitlines()
    assert result.returncode == 1 and len(out) == 2 and "more like it" in out[0]
    inputs = sum(len(task["test"]) for task in tasks.values())
    assert f"{2 * inputs} problems" in result.stderr


def test_smallest_n_means_the_same_in_data_export(tmp_path):
    new = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--smallest", "2", "--out", str(tmp_path / "new"))
    old = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--smallest", "--limit", "2", "--out", str(tmp_path / "old"))
    assert new.returncode == old.returncode == 0
    assert (tmp_path / "new" / "challenges.json").read_bytes() == (tmp_path / "old" / "challenges.json").read_bytes()
    assert len(json.loads((tmp_path / "new" / "challenges.json").read_text())) == 2


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
