"""Loading and validating tasks: every bad-input class is refused with a line naming file, task and place; a file
of another kind is named as such; the validate command on challenges, and data export."""

from __future__ import annotations

import json

import pytest

from arc_submit.data.tasks import (
    DATASETS,
    TaskFileError,
    grid_problems,
    kaggle_layout,
    load_dataset,
    load_tasks,
    rule_tasks,
    smallest,
    task_problems,
)
from arc_submit.errors import UserError
from tests.helpers.cli import export_eval, run_cli

GOOD = {"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}], "test": [{"input": [[5, 6], [7, 8]]}]}


def write(tmp_path, data, name="challenges.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def problems_of(tmp_path, data) -> list[str]:
    with pytest.raises(UserError) as error:
        load_tasks(write(tmp_path, data))
    return error.value.problems


def test_loads_a_good_kaggle_file(tmp_path):
    tasks = load_tasks(write(tmp_path, {"abc": GOOD}))
    assert [t.task_id for t in tasks] == ["abc"]
    assert tasks[0].train[0].output == [[4, 3], [2, 1]]
    assert tasks[0].solutions is None


@pytest.mark.parametrize(
    "grid, place, fragment",
    [
        ([[1, 2], [3]], "train[0].input row 1", "ragged"),
        ([[1, 10]], "train[0].input row 0 column 1", "not a colour"),
        ([[1, -1]], "train[0].input row 0 column 1", "not a colour"),
        ([[1, "2"]], "train[0].input row 0 column 1", "not a colour"),
        ([[1, 2.0]], "train[0].input row 0 column 1", "not a colour"),
        ([[1, True]], "train[0].input row 0 column 1", "not a colour"),
        ([[1, None]], "train[0].input row 0 column 1", "not a colour"),
        ([], "train[0].input", "0 rows"),
        ([[]], "train[0].input row 0", "0 cells"),
        ([[0] * 31], "train[0].input row 0", "31 cells"),
        ([[0]] * 31, "train[0].input", "31 rows"),
        ("012", "train[0].input", "not a list of rows"),
        ([1, 2], "train[0].input row 0", "not a list of cells"),
    ],
)
def test_every_bad_grid_is_refused_naming_file_task_and_place(tmp_path, grid, place, fragment):
    task = {"train": [{"input": grid, "output": [[1]]}], "test": [{"input": [[1]]}]}
    problems = problems_of(tmp_path, {"task0001": task})
    line = problems[0]
    assert "challenges.json" in line and "task0001" in line and place in line and fragment in line


@pytest.mark.parametrize(
    "task, fragment",
    [
        ({"train": [], "test": [{"input": [[1]]}]}, "'train' must be a non-empty list"),
        ({"test": [{"input": [[1]]}]}, "'train' must be a non-empty list"),
        ({"train": [{"input": [[1]], "output": [[1]]}], "test": []}, "'test' must be a non-empty list"),
        ({"train": [{"input": [[1]], "output": [[1]]}]}, "'test' must be a non-empty list"),
        ({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}, "train[0]: has no 'output'"),
        ({"train": [{"output": [[1]]}], "test": [{"input": [[1]]}]}, "train[0]: has no 'input'"),
        ({"train": [{"input": [[1]], "output": [[1]]}], "test": [{}]}, "test[0]: has no 'input'"),
        ({"train": [[[1]]], "test": [{"input": [[1]]}]}, "train[0]: is"),
        ({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}], "x": 1}, "unknown key 'x'"),
        ([1, 2], "not an object with 'train' and 'test'"),
    ],
)
def test_every_bad_task_shape_is_refused(tmp_path, task, fragment):
    problems = problems_of(tmp_path, {"task0001": task})
    assert any("task0001" in line and fragment in line for line in problems), problems


def test_all_problems_are_reported_at_once(tmp_path):
    bad = {"train": [{"input": [[1, 2], [3]], "output": [[1, 11]]}], "test": [{"input": []}]}
    problems = problems_of(tmp_path, {"good": GOOD, "bad1": bad, "bad2": {"train": [], "test": []}})
    assert sum("task bad1" in p for p in problems) == 3
    assert sum("task bad2" in p for p in problems) == 2
    assert not any("task good" in p for p in problems)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{", "not valid JSON"),
        ("[]", "not an object of task id"),
        ("{}", "holds no tasks"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"\xff\xfe".decode("latin-1"), "not valid JSON"),
    ],
)
def test_bad_files_are_one_clear_line(tmp_path, text, fragment):
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1 and "challenges.json" in problems[0] and fragment in problems[0]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="nothere.json: no such file"):
        load_tasks(tmp_path / "nothere.json")


def test_unusable_task_id_is_refused(tmp_path):
    problems = problems_of(tmp_path, {"../evil": GOOD})
    assert "not usable as a file name" in problems[0]


def test_folder_of_task_files_gives_solutions(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    solved = {**GOOD, "test": [{"input": [[1]], "output": [[2]]}]}
    write(folder, solved, "aaa.json")
    write(folder, GOOD, "bbb.json")
    tasks = load_tasks(folder)
    assert [t.task_id for t in tasks] == ["aaa", "bbb"]
    assert tasks[0].solutions == [[[2]]] and tasks[1].solutions is None


def test_folder_problems_name_each_file(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    write(folder, "{oops", "aaa.json")
    write(folder, {"train": [], "test": [{"input": [[1]]}]}, "bbb.json")
    with pytest.raises(TaskFileError) as error:
        load_tasks(folder)
    assert any("aaa.json" in p and "not valid JSON" in p for p in error.value.problems)
    assert any("bbb.json" in p and "task bbb" in p for p in error.value.problems)


def test_solutions_are_attached_and_checked(tmp_path):
    challenges = write(tmp_path, {"abc": GOOD, "def": GOOD})
    good = write(tmp_path, {"abc": [[[1]]]}, "solutions.json")
    tasks = load_tasks(challenges, good)
    assert tasks[0].solutions == [[[1]]] and tasks[1].solutions is None
    bad = write(tmp_path, {"abc": [[[1]], [[2]]], "zzz": [[[1]]], "def": [[[1, 2], [1]]]}, "bad.json")
    with pytest.raises(TaskFileError) as error:
        load_tasks(challenges, bad)
    lines = error.value.problems
    assert any("task abc" in p and "2 solutions for 1 test inputs" in p for p in lines)
    assert any("task zzz" in p and "not in the challenges" in p for p in lines)
    assert any("task def" in p and "ragged" in p for p in lines)


EXPECTED_SIZES = {"arc-agi-1-train": 400, "arc-agi-1-eval": 400, "arc-agi-2-train": 1000, "arc-agi-2-eval": 120,
                  "rules": 4}


@pytest.mark.parametrize("name", list(DATASETS))
def test_embedded_datasets_load_with_solutions(name):
    tasks = load_dataset(name)
    assert len(tasks) == EXPECTED_SIZES[name]
    assert all(task.solutions is not None for task in tasks)
    assert [t.task_id for t in tasks] == sorted(t.task_id for t in tasks)


def obeys(rule: str, source: list[list[int]], target: list[list[int]], colours: dict[int, int]) -> bool:
    """Whether `target` is `source` under the rule, checked cell by cell; `colours` collects the recolour map."""
    rows, columns = len(source), len(source[0])
    if rule == "recolour":
        pairs = [(source[r][c], target[r][c]) for r in range(rows) for c in range(columns)]
        return all(colours.setdefault(a, b) == b for a, b in pairs) and len(target) == rows
    where = {"flip": lambda r, c: (r, columns - 1 - c), "transpose": lambda r, c: (c, r),
             "rotate": lambda r, c: (rows - 1 - r, columns - 1 - c)}[rule]
    shape = (columns, rows) if rule == "transpose" else (rows, columns)
    return (len(target), len(target[0])) == shape and all(
        target[where(r, c)[0]][where(r, c)[1]] == source[r][c] for r in range(rows) for c in range(columns))


@pytest.mark.parametrize("seed", [7, 0, 123])
def test_the_rule_tasks_obey_their_rule_in_every_pair_and_repeat_with_their_seed(seed):
    tasks = rule_tasks(seed)
    assert [t.task_id for t in tasks] == ["flip", "recolour", "rotate", "transpose"]
    for task in tasks:
        assert not task_problems(task.task_id, task.to_challenge()) and len(task.train) == 3 and len(task.test) == 1
        colours: dict[int, int] = {}
        for pair in [*task.train, *task.test]:
            assert 3 <= len(pair.input) <= 6 and 3 <= len(pair.input[0]) <= 6
            assert obeys(task.task_id, pair.input, pair.output, colours), (task.task_id, pair)
        if task.task_id == "recolour":  # one permutation: no two colours map to one, and it moves some
            assert len(set(colours.values())) == len(colours) and any(a != b for a, b in colours.items())
    assert rule_tasks(seed) == tasks and rule_tasks(seed + 1) != tasks
    assert load_dataset("rules") == rule_tasks(7)


def test_unknown_dataset_is_refused():
    with pytest.raises(UserError, match="unknown dataset 'arc-agi-3'"):
        load_dataset("arc-agi-3")


def test_kaggle_layout_round_trips(tmp_path):
    tasks = load_dataset("arc-agi-2-eval")[:5]
    challenges, solutions = kaggle_layout(tasks)
    assert all("output" not in pair for entry in challenges.values() for pair in entry["test"])
    reloaded = load_tasks(write(tmp_path, challenges), write(tmp_path, solutions, "solutions.json"))
    assert reloaded == tasks


def test_smallest_picks_fewest_cells_in_id_order():
    tasks = load_dataset("arc-agi-2-eval")
    chosen = smallest(tasks, 3)
    sizes = sorted(task.cells() for task in tasks)
    assert sorted(task.cells() for task in chosen) == sizes[:3]
    assert [t.task_id for t in chosen] == sorted(t.task_id for t in chosen)


def test_grid_problems_accepts_every_valid_size():
    assert grid_problems([[9] * 30] * 30, "g") == [] and grid_problems([[0]], "g") == []


# ----------------------------------------------------------------------------- the validate and data export commands


def test_validate_reports_bad_challenges_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"t9": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}}))
    result = run_cli("validate", "--challenges", str(bad))
    assert result.returncode == 1
    assert "bad.json: task t9: train[0].input row 1" in result.stdout and "Traceback" not in result.stderr
    missing = run_cli("validate", "--challenges", str(tmp_path / "none.json"))
    assert missing.returncode != 0 and "none.json: no such file" in missing.stdout


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


def test_smallest_n_means_the_same_in_data_export(tmp_path):
    new = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--smallest", "2", "--out", str(tmp_path / "new"))
    old = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--smallest", "--limit", "2", "--out", str(tmp_path / "old"))
    assert new.returncode == old.returncode == 0
    assert (tmp_path / "new" / "challenges.json").read_bytes() == (tmp_path / "old" / "challenges.json").read_bytes()
    assert len(json.loads((tmp_path / "new" / "challenges.json").read_text())) == 2
