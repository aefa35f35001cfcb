"""Candidates of one task: K augmented prompts per test input, and each completion decoded and mapped
back through its augmentation's inverse.

    jobs, too_long = prompt_jobs(task, builder, config.sampling, seed, max_new_tokens(task, builder, config.sampling))
    candidate = decode_candidate(completion, builder.encoder, job.augmentation)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arc_submit.config import SamplingConfig
from arc_submit.data.augment import Augmentation, draw_distinct
from arc_submit.data.encoders import DecodeError, GridEncoder
from arc_submit.data.prompts import PromptBuilder
from arc_submit.data.tasks import Grid, Task
from arc_submit.predict.backends import Completion


@dataclass(frozen=True)
class Candidate:
    """One sampled answer after undoing its augmentation; `grid` is [] when the text did not parse."""

    grid: Grid
    logprob: float | None
    augmentation: Augmentation
    text: str | None = None  # the raw text, kept when it did not parse
    reason: str | None = None

    def to_dict(self) -> dict:
        data = {"grid": self.grid, "logprob": self.logprob, "augmentation": self.augmentation.to_dict()}
        if self.text is not None:
            data.update(text=self.text, reason=self.reason)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Candidate:
        return cls(data["grid"], data["logprob"], Augmentation.from_dict(data["augmentation"]), data.get("text"),
                   data.get("reason"))


def decode_candidate(completion: Completion, encoder: GridEncoder, augmentation: Augmentation) -> Candidate:
    """Parse a completion and map its grid back through the augmentation's inverse."""
    if completion.finish_reason == "length":
        reason = "hit max_new_tokens before the answer ended"
        return Candidate([], completion.logprob, augmentation, completion.text, reason)
    try:
        grid = encoder.decode(completion.text)
    except DecodeError as error:
        return Candidate([], completion.logprob, augmentation, completion.text, str(error))
    return Candidate(augmentation.invert_grid(grid), completion.logprob, augmentation)


def max_new_tokens(task: Task, builder: PromptBuilder, config: SamplingConfig) -> int:
    """The answer bound: configured, or the answer-turn tokens of a square grid as large as the task's
    largest side (or 30), whichever digits it holds, plus a small margin."""
    if config.max_new_tokens:
        return config.max_new_tokens
    side = 30
    if config.max_new_tokens_from == "task":
        grids = [p.output for p in task.train] + [p.input for p in [*task.train, *task.test]]
        side = max(max(len(g), len(g[0])) for g in grids)
    fills = ([[0] * side for _ in range(side)], [[(r + c) % 10 for c in range(side)] for r in range(side)])
    return max(builder.answer_tokens(grid) for grid in fills) + 8


@dataclass(frozen=True)
class PromptJob:
    test_index: int
    augmentation: Augmentation
    prompt_ids: list[int]
    seed: int


def prompt_jobs(task: Task, builder: PromptBuilder, config: SamplingConfig, seed: int,
                answer_bound: int) -> tuple[list[PromptJob], list[int]]:
    """K augmented prompts per test input; also the test indices whose prompts could not fit."""
    rng = np.random.default_rng([seed, 2])
    jobs, too_long = [], []
    options = config.augment.draw_options()
    for test_index in range(len(task.test)):
        augmentations = draw_distinct(rng, config.augmentations, len(task.train), **options)
        fitted = 0
        for number, augmentation in enumerate(augmentations):
            augmented = augmentation.apply_task(task)
            example = builder.fit(augmented.train, augmented.test[test_index].input, reserve=answer_bound)
            if example is not None:
                fitted += 1
                jobs.append(PromptJob(test_index, augmentation, example.prompt_ids, seed + 1000 * test_index + number))
        if not fitted:
            too_long.append(test_index)
    return jobs, too_long


