"""The one cost model, per token, shared by the time budget (arc_submit.run.budget) and `plan`
(arc_submit.studies.plan): a task's work is its tokens (trained per TTFT step, generated per sampled view),
and the machine's rates turn tokens into seconds.

    work = task_work(task, builder, config)              # tokens, from the task itself (before it runs)
    rates = Meter().add(record) ... .rates()             # seconds per token, measured on finished tasks
    seconds = rates.seconds(work, steps=32, views=8)

What is measured, and so what a rate covers: training seconds are TTFT and serving its weights (load_s);
sampling seconds are sampling and scoring the candidates (scoring grows with the candidates, so with the
views); the overhead is the rest of the task (prompts, decoding, selection).

Imports, inside run/: nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskWork:
    """A task's work in tokens: trained per TTFT optimizer step, generated per sampled view (all its test
    inputs and samples)."""

    train_tokens_per_step: float
    gen_tokens_per_view: float


def task_work(task, builder, config) -> TaskWork | None:
    """The expected tokens of `task` under `config`: its leave-one-out examples' mean length times the
    examples per step; per view, each test input's samples times a typical answer's length (the train
    outputs', capped at the sampling bound). None when no training example fits `max_seq_len`."""
    from arc_submit.predict.candidates import answer_bound

    lengths = []
    for index, pair in enumerate(task.train):
        demonstrations = [p for i, p in enumerate(task.train) if i != index] or [pair]
        example = builder.fit(demonstrations, pair.input, pair.output)
        if example is not None:
            lengths.append(example.length)
    if not lengths:
        return None
    ttft, sampling = config.ttft, config.sampling
    answer = statistics.fmean(builder.answer_tokens(p.output) for p in task.train)
    return TaskWork(ttft.batch_size * ttft.gradient_accumulation * statistics.fmean(lengths),
                    len(task.test) * sampling.samples * min(answer_bound(builder, sampling), answer))


@dataclass(frozen=True)
class Rates:
    """Seconds per trained token, per generated token, and per task besides both."""

    train_s_per_token: float
    gen_s_per_token: float
    overhead_s: float

    @classmethod
    def per_second(cls, train_tokens_per_s: float, gen_tokens_per_s: float, overhead_s: float) -> Rates:
        return cls(1 / train_tokens_per_s, 1 / gen_tokens_per_s, overhead_s)

    def step_seconds(self, work: TaskWork) -> float:
        return work.train_tokens_per_step * self.train_s_per_token

    def view_seconds(self, work: TaskWork) -> float:
        return work.gen_tokens_per_view * self.gen_s_per_token

    def seconds(self, work: TaskWork, steps: int, views: int) -> float:
        """A task's expected wall time: `steps` TTFT steps, `views` sampled views, and the overhead."""
        return steps * self.step_seconds(work) + views * self.view_seconds(work) + self.overhead_s

    def as_dict(self) -> dict[str, float]:
        return {"train_tokens_per_s": 1 / self.train_s_per_token if self.train_s_per_token else 0.0,
                "gen_tokens_per_s": 1 / self.gen_s_per_token if self.gen_s_per_token else 0.0,
                "overhead_s": self.overhead_s}


@dataclass
class Meter:
    """Tokens and seconds of finished tasks, summed: their rates and their mean work."""

    train_tokens: float = 0.0
    train_seconds: float = 0.0
    gen_tokens: float = 0.0
    gen_seconds: float = 0.0
    overheads: list[float] = field(default_factory=list)
    works: list[TaskWork] = field(default_factory=list)  # measured: tokens per step and per view done

    def add(self, steps: int, train_tokens: float, train_seconds: float, views: int, gen_tokens: float,
            gen_seconds: float, total_seconds: float) -> Meter:
        """A finished task: its steps and trained tokens, its sampled views and generated tokens, and the
        seconds of each (gen_seconds 0 when it did not sample: then it says nothing about the machine)."""
        if steps and train_tokens:
            self.train_tokens += train_tokens
            self.train_seconds += train_seconds
        if gen_seconds and gen_tokens:
            self.gen_tokens += gen_tokens
            self.gen_seconds += gen_seconds
            self.overheads.append(max(0.0, total_seconds - train_seconds - gen_seconds))
            self.works.append(TaskWork(train_tokens / steps if steps else 0.0, gen_tokens / max(1, views)))
        return self

    def add_record(self, record) -> Meter:
        """A finished task's record (arc_submit.run.record.TaskRecord)."""
        timings = record.timings
        steps = record.ttft.steps if record.ttft else 0
        return self.add(steps, record.ttft.tokens if record.ttft else 0,
                        timings.get("ttft_s", 0) + timings.get("load_s", 0), record.prompts_per_input,
                        record.generated_tokens, timings.get("sample_s", 0) + timings.get("score_s", 0),
                        timings["total_s"])

    def to_dict(self) -> dict:
        return {"train_tokens": self.train_tokens, "train_seconds": self.train_seconds, "gen_tokens": self.gen_tokens,
                "gen_seconds": self.gen_seconds, "overheads": list(self.overheads),
                "works": [[w.train_tokens_per_step, w.gen_tokens_per_view] for w in self.works]}

    @classmethod
    def from_dict(cls, data: dict) -> Meter:
        """The meter of `to_dict` (the driver's, sent to its workers with each task)."""
        return cls(data["train_tokens"], data["train_seconds"], data["gen_tokens"], data["gen_seconds"],
                   list(data["overheads"]), [TaskWork(*w) for w in data["works"]])

    @property
    def sampled(self) -> bool:
        """Whether a finished task sampled (before that, nothing is known of the machine)."""
        return bool(self.works)

    def rates(self) -> Rates:
        return Rates(self.train_seconds / self.train_tokens if self.train_tokens else 0.0,
                     self.gen_seconds / self.gen_tokens if self.gen_tokens else 0.0,
                     statistics.fmean(self.overheads) if self.overheads else 0.0)

    def mean_work(self) -> TaskWork:
        """The mean measured work of the finished tasks that sampled (steps that trained only)."""
        trained = [w.train_tokens_per_step for w in self.works if w.train_tokens_per_step]
        return TaskWork(statistics.fmean(trained) if trained else 0.0,
                        statistics.fmean(w.gen_tokens_per_view for w in self.works) if self.works else 0.0)
