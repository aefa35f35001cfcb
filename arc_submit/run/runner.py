"""One task from plan to record, in the session: TTFT -> serve the weights (merged and pushed, or a
LoRA) -> sample (or DFS) under augmented views -> undo them -> score (poe, nvarc; on the engine, or on the
trained model kept in memory with its adapter attached) -> select -> attempts.

Only resource failures (out of memory, a diverging loss) degrade a single task, and its record says
so; any other error is a configuration or code error and stops the run (RunStopped). `heartbeat` is
called at every stage and training step, so that a worker's parent can tell a slow task from a hung one.

    runner = TaskRunner(config, open_session(config, progress=False))
    record = runner.run_task(task, Budget(0, config.ttft.steps).plan(1))

Imports, inside run/: session, weights, rundir, record, budget (never the worker, the queue or the pipeline).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arc_submit.config import Config
from arc_submit.data.submission import fallback_attempts
from arc_submit.data.tasks import Task
from arc_submit.errors import EngineBroken
from arc_submit.faults import inject
from arc_submit.model.training import TaskTooLong, TrainResult, loss_rose
from arc_submit.predict.candidates import PromptJob, answer_reserve, find_candidates, prompt_jobs, unparsed_counts
from arc_submit.predict.sampler import Serving, free_accelerator_memory
from arc_submit.predict.scoring import score_candidates
from arc_submit.predict.selection import needs_views, select_attempts
from arc_submit.run.budget import TaskPlan
from arc_submit.run.memory import process_memory, release_host_memory
from arc_submit.run.record import TaskRecord
from arc_submit.run.rundir import task_hash
from arc_submit.run.session import Session
from arc_submit.run.weights import TaskWeights

log = logging.getLogger("arc_submit")


class RunStopped(Exception):
    """A configuration or code error met while running a task: the run stops (the submission stays valid)."""


def is_resource_failure(error: BaseException) -> bool:
    """Errors that may cost one task and not the run: out of memory (GPU or CPU), a diverging loss."""
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError, FloatingPointError)):
        return True
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text


def derive_seed(seed: int, name: str) -> int:
    """A 32-bit seed from (run seed, name): the same for a task whatever the order or worker."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little")


@contextmanager
def timed(timings: dict, name: str, clock: Callable[[], float] = time.perf_counter):
    """Record the seconds the block took on `clock` under `name` (when it finishes without an error)."""
    start = clock()
    yield
    timings[name] = round(clock() - start, 3)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TaskRunner:
    """Runs tasks one at a time in a session; knows nothing of run dirs or queues."""

    config: Config
    session: Session
    clock: Callable[[], float] = time.monotonic
    heartbeat: Callable[[str], None] = lambda stage: None

    def run_task(self, task: Task, plan: TaskPlan) -> TaskRecord:
        """One task from plan to record: train -> serve -> sample -> score -> select. A failing stage costs
        only what depends on it; the model is bare again after it, whatever happens."""
        inject("task", task.task_id)
        self.heartbeat(f"task {task.task_id}")
        seed = derive_seed(self.config.run.seed, task.task_id)
        seed_everything(seed)
        start = self.clock()
        record = TaskRecord(task.task_id, task_hash(task), seed, plan.mode, [plan.reason] if plan.reason else [],
                            candidates=[[] for _ in task.test], votes=[[] for _ in task.test])
        with self.session.weights.for_task(task.task_id) as weights:
            if plan.mode != "fallback" and plan.steps and self.config.ttft.scope == "task":
                try:
                    self.train_and_serve(weights, task, plan, seed, record, needs_views(self.config.voting.rule))
                except TaskTooLong as error:  # a prompt with fewer demonstrations may still fit: sampled without TTFT
                    record.mode = "too_long"
                    record.reasons.append(f"{error}: sampled without TTFT where a prompt fits")
                except Exception as error:  # noqa: BLE001 - resource failures degrade the task, others stop the run
                    self._failed(record, "ttft", error)
            jobs = None
            if plan.mode != "fallback":
                try:
                    jobs = self._sample(weights, task, seed, record, plan)
                except Exception as error:  # noqa: BLE001 - resource failures degrade the task, others stop the run
                    self._failed(record, "sampling", error)
                    if weights.trained and self.config.run.on_error == "degrade":  # once more, with the base model
                        jobs = self._sample_base(weights, task, seed, record, plan)
            if jobs is not None and needs_views(self.config.voting.rule):
                try:
                    inject("scoring", task.task_id)
                    self.heartbeat(f"scoring {task.task_id}")
                    with timed(record.timings, "score_s", self.clock):
                        record.view_scores = self._score_views(weights, record, jobs,
                                                               self.serving(weights, plan, f"scoring {task.task_id}"))
                except Exception as error:  # noqa: BLE001 - resource failures degrade the task, others stop the run
                    self._failed(record, "scoring", error)
        self._vote(task, record)
        record.timings["total_s"] = round(self.clock() - start, 3)
        release_host_memory()
        log.info("task %s: memory after it: %s", task.task_id,
                 ", ".join(f"{key} {value}" for key, value in process_memory().items()))
        return record

    def _sample_base(self, weights: TaskWeights, task: Task, seed: int, record: TaskRecord,
                     plan: TaskPlan) -> list[PromptJob] | None:
        """run.on_error = degrade: sampling failed after TTFT; sample again with the base model (no TTFT)."""
        try:
            weights.release()
            weights.trained = False
            jobs = self._sample(weights, task, seed, record, plan)
        except Exception as error:  # noqa: BLE001 - resource failures degrade the task, others stop the run
            self._failed(record, "sampling", error)
            return None
        record.mode = "no_ttft"
        record.reasons.append("sampled again with the base model (no TTFT)")
        return jobs

    def _failed(self, record: TaskRecord, stage: str, error: Exception) -> None:
        """A resource failure degrades the task (and says so); a broken engine ends this process's part of the
        run (EngineBroken goes up as it is); anything else stops the run, unless run.on_error = degrade,
        where it degrades the task too (the traceback in run.log)."""
        if isinstance(error, EngineBroken):
            log.warning("task %s: %s: %s", record.task_id, stage, error)
            raise error
        what = f"{type(error).__name__}: {error}"
        if not is_resource_failure(error):
            log.debug("%s", traceback.format_exc())
            if self.config.run.on_error != "degrade":
                raise RunStopped(f"task {record.task_id}: {stage} failed: {what} (a configuration or code error, "
                                 "not a resource failure: the run stops here; the traceback is in run.log)") from error
            what += " (a configuration or code error; run.on_error = degrade: the task degrades, the run goes on)"
        record.failed_stages.append(stage)
        record.reasons.append(f"{stage} failed: {what}")
        log.log(logging.WARNING if is_resource_failure(error) else logging.ERROR, "task %s: %s failed: %s",
                record.task_id, stage, what)
        log.debug("%s", traceback.format_exc())
        if stage == "ttft" and record.mode in ("full", "cut"):
            record.mode = "no_ttft"
        if stage == "sampling":
            record.mode = "fallback"
        free_accelerator_memory()  # after an out-of-memory error above all; cheap otherwise

    def train_and_serve(self, weights: TaskWeights, task: Task, plan: TaskPlan, seed: int, record: TaskRecord,
                        scored: bool = False) -> None:
        """Train the task's adapter, then serve it to the sampler (merged and pushed, or as a LoRA), left
        attached when its candidates will be `scored` on the model."""
        trainer = self.session.trainer
        with weights.training(seed) as peft_model:
            inject("ttft", task.task_id)
            self.heartbeat(f"ttft {task.task_id}")
            trainer.on_step = lambda step: self.heartbeat(f"ttft {task.task_id} step {step}")
            result = trainer.train(peft_model, [task], plan.steps, seed, plan.ttft_end)
            if result.stopped_early:
                record.mode = "cut"
                record.reasons.append(result.stopped_early)
            record.ttft = result
            record.timings["ttft_s"] = round(result.seconds, 3)
            worse = loss_rose(result.losses)
            if worse:  # as a non-finite loss: the task is sampled with the base model, and says why
                raise FloatingPointError(worse)
        with timed(record.timings, "load_s", self.clock):  # merged tensor by tensor into the engine, then checked
            weights.serve_trained(self.session.weights.probe(task), keep=scored)

    def serving(self, weights: TaskWeights, plan: TaskPlan, stage: str) -> Serving:
        """What a stage of the task passes on: the adapter served, the task's end, the clock, its heartbeat."""
        return Serving(weights.adapter, plan.end, self.clock, lambda what: self.heartbeat(f"{stage} {what}"))

    def _sample(self, weights: TaskWeights, task: Task, seed: int, record: TaskRecord,
                plan: TaskPlan) -> list[PromptJob]:
        """The trained weights served, else the model as given, then the candidates of every view's prompt."""
        inject("sampling", task.task_id)
        self.heartbeat(f"sampling {task.task_id}")
        if not weights.trained:
            with timed(record.timings, "load_s", self.clock):
                weights.serve_start(self.session.weights.probe(task))
        with timed(record.timings, "sample_s", self.clock):
            return self._generate(task, seed, record, plan, self.serving(weights, plan, f"sampling {task.task_id}"))

    def _generate(self, task: Task, seed: int, record: TaskRecord, plan: TaskPlan,
                  serving: Serving) -> list[PromptJob]:
        """Candidates from every view's prompt (sampled, or all above min_prob by DFS); the jobs used."""
        session, config = self.session, self.config.sampling
        if plan.views is not None and plan.views < config.augmentations:
            config = dataclasses.replace(config, augmentations=plan.views)
        reserve = answer_reserve(task, session.builder, config)
        jobs, too_long = prompt_jobs(task, session.builder, config, seed, reserve)
        for index in too_long:
            record.reasons.append(f"test[{index}]: prompt does not fit max_seq_len even with one train pair")
        with timed(record.timings, "generate_s", self.clock):
            candidates, completions, cut = find_candidates(session.sampler, session.builder, task, jobs, config,
                                                           serving)
        if cut:
            record.reasons.append(f"dfs: {cut}")
        record.candidates = candidates
        record.unparsed = unparsed_counts(candidates)
        record.prompts_per_input = config.augmentations
        record.generated_tokens = sum(c.tokens for outputs in completions for c in outputs)
        record.prompt_tokens = sum(len(job.prompt_ids) for job in jobs)
        return jobs

    def _score_views(self, weights: TaskWeights, record: TaskRecord, jobs: list[PromptJob],
                     serving: Serving) -> list:
        """Each distinct candidate's log-likelihood under the first `voting.scoring_views` views of its test input
        (fewer views, the same for every candidate, when the task's end comes first), with the weights it
        was sampled with: on the engine, or on the model (the trained one, still attached)."""
        with weights.scorer() as scorer:
            views, short = score_candidates(scorer, self.session.builder, record.candidates, jobs,
                                            self.config.voting.scoring_views, serving)
        record.reasons += [f"test[{index}]: time budget: scored under fewer views" for index in short]
        return views

    def _vote(self, task: Task, record: TaskRecord) -> None:
        """Attempts from the candidates (by `vote` when the task was not scored: not sampled, or the scoring
        failed)."""
        scored = record.view_scores if len(record.view_scores) == len(record.candidates) else None
        record.votes, record.attempts, reasons = select_attempts(task, record.candidates, self.config.voting.rule,
                                                                 scored)
        record.reasons += reasons
        record.reasons += [f"test[{index}]: no answer parsed: fallback attempts" for index in record.unanswered]

    def train_shared(self, tasks: list[Task], end: float | None = None,
                     save_to: Path | None = None) -> TrainResult:
        """scope = "all": one adapter trained on every task's examples (stopped at `end`), served to
        every task, and saved to `save_to` (an adapter folder) for the other workers and a resumed run."""
        session = self.session
        seed = derive_seed(self.config.run.seed, "scope=all")
        seed_everything(seed)
        session.trainer.on_step = lambda step: self.heartbeat(f"shared ttft step {step}")
        with session.weights.attached(session.resolved.adapter_dir, seed) as peft_model:
            fitting = [task for task in tasks if task.train]
            result = session.trainer.train(peft_model, fitting, self.config.ttft.steps, seed, end)
            if save_to is not None:
                partial = save_to.with_name(save_to.name + ".partial")
                peft_model.save_pretrained(partial)
                partial.replace(save_to)  # whole or absent: a worker never loads half an adapter
            session.weights.serve_shared(peft_model, session.weights.probe(fitting[0]), save_to)
        session.timings["shared_ttft_s"] = result.seconds
        return result

    def load_shared(self, folder: Path, tasks: list[Task]) -> None:
        """scope = "all": serve the shared adapter another worker (or an earlier run) trained and saved."""
        weights = self.session.weights
        with weights.attached(folder) as peft_model:
            fitting = [task for task in tasks if task.train]
            weights.serve_shared(peft_model, weights.probe(fitting[0]), folder)


def failed_record(task: Task, seed: int, reason: str, stage: str = "worker") -> TaskRecord:
    """The record of a task nothing could finish: fallback attempts, and why (`seed`: the run's)."""
    return TaskRecord(task.task_id, task_hash(task), derive_seed(seed, task.task_id), "fallback", [reason],
                      candidates=[[] for _ in task.test], votes=[[] for _ in task.test],
                      attempts=fallback_attempts(task), failed_stages=[stage])


def task_error_record(task: Task, config: Config, error: Exception) -> TaskRecord:
    """run.on_error = degrade: an error outside the task's guarded stages (planning, selection) costs the
    task only: fallbacks, said in the record and run.log."""
    if isinstance(error, (EngineBroken, RunStopped)) or config.run.on_error != "degrade":
        raise error
    log.error("task %s failed: %s: %s (run.on_error = degrade: fallback attempts)", task.task_id,
              type(error).__name__, error)
    log.debug("%s", traceback.format_exc())
    return failed_record(task, config.run.seed, f"task failed: {type(error).__name__}: {error} (a configuration or "
                         "code error; run.on_error = degrade: fallback attempts, the run goes on)", "task")


def describe(record: TaskRecord) -> str:
    """One line about a finished task, for the console."""
    parts = [f"task {record.task_id}: {record.mode}"]
    if record.ttft and record.ttft.losses:
        losses = record.ttft.losses
        parts.append(f"ttft {record.ttft.steps} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    candidates = [c for output in record.candidates for c in output]
    if candidates:
        parsed = sum(bool(c.grid) for c in candidates)
        unparsed = ", ".join(f"{count} {kind}" for kind, count in record.unparsed.items())
        parts.append(f"{parsed}/{len(candidates)} answers parsed" + (f" ({unparsed} unparsed)" if unparsed else ""))
    if "total_s" in record.timings:
        parts.append(f"{record.timings['total_s']:.1f} s")
    parts += record.reasons
    return "; ".join(parts)


