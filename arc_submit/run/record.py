"""What a finished task leaves in `tasks/<task_id>.json`: one typed, versioned record, checked when it is
read back, so that a resumed run never trusts a record it cannot fully read.

    record = TaskRecord.from_dict(read_json(path))   # RecordError (one line) when anything is off
    write_json(path, record.to_dict())

Imports, inside run/: budget only (its modes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arc_submit.data.augment import Augmentation
from arc_submit.data.tasks import Grid, grid_key, is_grid
from arc_submit.model.training import TrainResult
from arc_submit.predict.candidates import Candidate
from arc_submit.predict.selection import Vote
from arc_submit.run.budget import MODES as PLAN_MODES

SCHEMA_VERSION = 6  # 1: untyped; 2: no unparsed counts; 3: no views, scores; 4: no prompts_per_input;
# 5: view_scores under the key "views"
READS = {5: {"views": "view_scores"}}  # older versions read too: their keys that were renamed since
MODES = (*PLAN_MODES, "too_long")


class RecordError(ValueError):
    """A record that cannot be trusted; the message says what is wrong in one line."""


@dataclass
class TaskRecord:
    task_id: str
    task_hash: str  # of what the model sees (arc_submit.run.rundir.task_hash): another content, another task
    seed: int
    mode: str  # one of MODES
    reasons: list[str] = field(default_factory=list)
    ttft: TrainResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    candidates: list[list[Candidate]] = field(default_factory=list)  # per test input
    votes: list[list[Vote]] = field(default_factory=list)  # per test input, best first
    view_scores: list[dict] = field(default_factory=list)  # per test input: grid key -> log-likelihood per scoring view
    attempts: list[list[Grid]] = field(default_factory=list)  # per test input, two grids (or [])
    failed_stages: list[str] = field(default_factory=list)
    unparsed: dict[str, int] = field(default_factory=dict)  # answers that did not parse, by kind
    generated_tokens: int = 0
    prompt_tokens: int = 0
    prompts_per_input: int = 0  # augmented prompts (views) sampled per test input
    schema_version: int = SCHEMA_VERSION

    @property
    def degraded(self) -> bool:
        """Less than its plan: fallback attempts, or a stage that failed (out of memory, a time limit)."""
        return self.mode == "fallback" or bool(self.failed_stages)

    @property
    def unanswered(self) -> list[int]:
        """The test inputs the model was sampled on and gave no parsed answer for (their attempts are
        fallbacks); a degraded task says so elsewhere."""
        if self.degraded:
            return []
        return [index for index, output in enumerate(self.candidates) if not any(c.grid for c in output)]

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version, "task_id": self.task_id, "task_hash": self.task_hash,
            "seed": self.seed, "mode": self.mode, "reasons": list(self.reasons),
            "failed_stages": list(self.failed_stages), "unparsed": dict(self.unparsed), "ttft": self.ttft.to_dict() if self.ttft else None,
            "timings": dict(self.timings), "generated_tokens": self.generated_tokens,
            "prompt_tokens": self.prompt_tokens, "prompts_per_input": self.prompts_per_input,
            "candidates": [[c.to_dict() for c in output] for output in self.candidates],
            "votes": [[v.to_dict() for v in output] for output in self.votes],
            "view_scores": [[{"grid": _grid(key), "logprobs": logprobs} for key, logprobs in output.items()]
                            for output in self.view_scores],
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: object) -> TaskRecord:
        """The record in `data`, or RecordError naming the first thing that is missing or wrong."""
        if not isinstance(data, dict):
            raise RecordError(f"is {type(data).__name__}, not an object")
        version = data.get("schema_version", 1)
        if version in READS:  # an older record this one reads: its renamed keys under their names now
            data = {READS[version].get(key, key): value for key, value in data.items()} | {
                "schema_version": SCHEMA_VERSION}
        elif version != SCHEMA_VERSION:
            raise RecordError(f"schema version {version!r}, this arc-submit writes {SCHEMA_VERSION} and reads "
                              f"{', '.join(map(str, sorted(READS)))}")
        try:
            record = cls._read(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RecordError(f"{type(error).__name__}: {error}") from None
        _check_shapes(record)
        return record

    @classmethod
    def _read(cls, data: dict) -> TaskRecord:
        ttft = _expect(data, "ttft", (dict, type(None)))
        return cls(
            task_id=_expect(data, "task_id", str), task_hash=_expect(data, "task_hash", str),
            seed=_expect(data, "seed", int), mode=_expect(data, "mode", str),
            reasons=_strings(data, "reasons"), failed_stages=_strings(data, "failed_stages"),
            unparsed={str(k): int(v) for k, v in _expect(data, "unparsed", dict).items()},
            ttft=None if ttft is None else TrainResult.from_dict(ttft),
            timings={str(k): float(v) for k, v in _expect(data, "timings", dict).items()},
            generated_tokens=_expect(data, "generated_tokens", int), prompt_tokens=_expect(data, "prompt_tokens", int),
            prompts_per_input=_expect(data, "prompts_per_input", int),
            candidates=[[Candidate.from_dict(c) for c in output] for output in _expect(data, "candidates", list)],
            votes=[[Vote.from_dict(v) for v in output] for output in _expect(data, "votes", list)],
            view_scores=[{grid_key(entry["grid"]): [float(x) for x in entry["logprobs"]] for entry in output}
                         for output in _expect(data, "view_scores", list)],
            attempts=_expect(data, "attempts", list),
        )


def _grid(key: tuple) -> Grid:
    """The grid of a grid_key (rows, columns, cells)."""
    rows, columns, cells = key
    return [list(cells[r * columns: (r + 1) * columns]) for r in range(rows)]


def _expect(data: dict, key: str, types):
    if key not in data:
        raise KeyError(f"no {key!r}")
    value = data[key]
    if not isinstance(value, types) or (isinstance(value, bool) and types is int):
        raise TypeError(f"{key!r} is {type(value).__name__}")
    return value


def _strings(data: dict, key: str) -> list[str]:
    values = _expect(data, key, list)
    if not all(isinstance(value, str) for value in values):
        raise TypeError(f"{key!r} holds something that is not text")
    return values


def _check_shapes(record: TaskRecord) -> None:
    if record.mode not in MODES:
        raise RecordError(f"mode {record.mode!r} is not one of {', '.join(MODES)}")
    outputs = len(record.attempts)
    if not outputs or len(record.candidates) != outputs or len(record.votes) != outputs:
        raise RecordError(f"{len(record.candidates)} candidate lists, {len(record.votes)} vote lists and "
                          f"{outputs} attempt lists: one of each per test input")
    for index, attempts in enumerate(record.attempts):
        if not isinstance(attempts, list) or len(attempts) != 2 or not all(a == [] or is_grid(a) for a in attempts):
            raise RecordError(f"attempts of test input {index} are not two grids (or [])")
    for index, output in enumerate(record.candidates):
        if not all(c.grid == [] or is_grid(c.grid) for c in output):
            raise RecordError(f"a candidate of test input {index} is not a grid (or [])")
        if not all(isinstance(c.augmentation, Augmentation) for c in output):
            raise RecordError(f"a candidate of test input {index} has no augmentation")
    if not all(is_grid(vote.grid) for output in record.votes for vote in output):
        raise RecordError("a vote is not a grid")
