"""submission.json: attempts per test input (padded in one place), building the submission, and checking one
against a challenges file (files.write_json writes it atomically).

    python -m arc_submit validate --challenges arc-agi_test_challenges.json --submission submission.json
"""

from __future__ import annotations

from arc_submit.data.tasks import Grid, Task, grid_problems, wrong_kind

ATTEMPT_KEYS = ("attempt_1", "attempt_2")
# The last guess for a free place: a grid, so both attempts are always grids (the official scorer and
# `validate` also take `[]`, but a grid is what every winner's submission holds); the Kaggle notebook's
# first cell writes the same fallback before anything is installed.
BLANK: Grid = [[0]]


def fill_attempts(ranked: list[Grid], test_input: Grid) -> list[Grid]:
    """The attempts of one test input: the top ranked grids; a free place gets the test input (a cheap
    guess), then BLANK. The one place where attempts are padded."""
    k = len(ATTEMPT_KEYS)
    attempts = list(ranked[:k])
    if len(attempts) < k and test_input not in attempts:
        attempts.append(test_input)
    return attempts + [BLANK for _ in range(k - len(attempts))]


def fallback_attempts(task: Task) -> list[list[Grid]]:
    """Attempts for a task that has no answer (yet): the test inputs as guesses, then BLANK."""
    return [fill_attempts([], pair.input) for pair in task.test]


def entry(attempts: list[Grid]) -> dict:
    """One submission entry from a test input's attempts (see fill_attempts)."""
    if len(attempts) != len(ATTEMPT_KEYS):
        raise ValueError(f"{len(attempts)} attempts; an entry has {len(ATTEMPT_KEYS)} (see fill_attempts)")
    return dict(zip(ATTEMPT_KEYS, attempts))


def build(attempts_by_task: dict[str, list[list[Grid]]]) -> dict:
    """A submission from {task_id: [attempts of test input 0, attempts of test input 1, ...]}."""
    return {task_id: [entry(attempts) for attempts in outputs] for task_id, outputs in attempts_by_task.items()}


def inputs_per_task(tasks: list[Task]) -> dict[str, int]:
    return {task.task_id: len(task.test) for task in tasks}


def _attempt_problems(value: object, place: str) -> list[str]:
    if isinstance(value, list) and not value:
        return []
    return grid_problems(value, place)


def entry_problems(value: object, expected: int) -> list[str]:
    """Problems of one task's value in a submission that should hold `expected` entries."""
    if not isinstance(value, list):
        return [f"is {type(value).__name__}, not a list of {expected} entries"]
    problems = []
    if len(value) != expected:
        problems.append(f"has {len(value)} entries for {expected} test inputs")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            problems.append(f"[{i}]: is {type(item).__name__}, not an object with attempt_1 and attempt_2")
            continue
        problems += [f"[{i}]: unknown key {key!r}" for key in item if key not in ATTEMPT_KEYS]
        for key in ATTEMPT_KEYS:
            if key not in item:
                problems.append(f"[{i}]: has no {key!r}")
            else:
                problems += _attempt_problems(item[key], f"[{i}].{key}")
    return problems


def submission_problems(submission: object, counts: dict[str, int], source: str) -> list[str]:
    """Every way `submission` is not valid for tasks with these test counts, one line each naming the task."""
    if not isinstance(submission, dict):
        return [f"{source}: is {type(submission).__name__}, not an object of task id -> entries"]
    if wrong := wrong_kind(submission, "submission", source):
        return wrong
    problems = [f"{source}: task {task_id}: missing" for task_id in counts if task_id not in submission]
    problems += [f"{source}: task {task_id}: is not in the challenges" for task_id in submission if task_id not in counts]
    for task_id, value in submission.items():
        if task_id in counts:
            problems += [f"{source}: task {task_id}: {p}" for p in entry_problems(value, counts[task_id])]
    return problems


def predictions_problems(predictions: object, counts: dict[str, int], source: str) -> list[str]:
    """Problems of a predictions file {task_id: [[candidate, ...] per test input]} against test counts."""
    if not isinstance(predictions, dict):
        return [f"{source}: is {type(predictions).__name__}, not an object of task id -> candidates"]
    if wrong := wrong_kind(predictions, "predictions", source):
        return wrong
    problems = []
    for task_id, outputs in predictions.items():
        where = f"{source}: task {task_id}"
        if task_id not in counts:
            problems.append(f"{where}: is not in the solutions")
        elif not isinstance(outputs, list) or len(outputs) != counts[task_id]:
            problems.append(f"{where}: needs a list of {counts[task_id]} candidate lists, one per test input")
        else:
            for i, candidates in enumerate(outputs):
                if not isinstance(candidates, list):
                    problems.append(f"{where}: [{i}]: is {type(candidates).__name__}, not a list of candidate grids")
                    continue
                for j, candidate in enumerate(candidates):
                    problems += [f"{where}: {p}" for p in _candidate_problems(candidate, f"[{i}][{j}]")]
    return problems


CANDIDATE_KEYS = {"grid": list, "logprob": (int, float, type(None)), "tokens": int, "score": (int, float, type(None))}


def _candidate_problems(candidate: object, place: str) -> list[str]:
    """A candidate is a grid (or []), or an object with its grid and what selection needs: logprob
    (cumulative), tokens, and score (its grid's score under the run's selection rule)."""
    if not isinstance(candidate, dict):
        return _attempt_problems(candidate, place)
    problems = [f"{place}: unknown key {key!r}" for key in candidate if key not in CANDIDATE_KEYS]
    if "grid" not in candidate:
        return problems + [f"{place}: has no 'grid'"]
    for key, types in CANDIDATE_KEYS.items():
        value = candidate.get(key)
        if key in candidate and (not isinstance(value, types) or isinstance(value, bool)):
            problems.append(f"{place}.{key}: {value!r} is not of the right type")
    return problems + _attempt_problems(candidate["grid"], f"{place}.grid")


def candidate_grid(candidate: object) -> list:
    """The grid of a predictions-file candidate (a grid, or an object holding one)."""
    return candidate["grid"] if isinstance(candidate, dict) else candidate
