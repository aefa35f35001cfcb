"""Schedule benchmark: does the time budget spend Kaggle's 12 hours? A simulated scoring run on a fake clock:
240 ARC-AGI-2 tasks, 4 workers (one per L4), the `kaggle-l4x4` preset, every task planned by the run's own
code (the work queue `arc_submit.run.queue.drive`, each worker's `arc_submit.run.budget`) from the records of
the tasks it finished, while the tasks' "true" durations come from a model of a 4B model on an L4 that the
planner does not see (its own per-token rates are measured from the simulated records, as in a real run).

    make bench-schedule      # or: .venv/bin/python benchmarks/schedule.py

For each load (the tasks' full work over what 4 workers can do in the time given), prints the unused time at
the end (share of the 12 hours the notebook had left when the run started), the tasks that got less than their
full plan, and those cut although the full work would have fitted. The last line is JSON.

The machine (estimates, not measurements: no L4 was lent): Qwen3-4B in bf16 on one L4 (121 TFLOPS dense bf16,
300 GB/s). TTFT with LoRA r32 and gradient checkpointing ~32 GFLOP per token at ~35% of peak: 1,300 trained
tokens/s. vLLM at gpu_memory_utilization 0.5 keeps ~20k tokens of KV cache, so ~5 sequences decode at once at
~35 ms a step: 150 generated tokens/s; prefill 5,000 tokens/s. Merging and pushing 8 GB of weights 20 s a task;
prompts and records 5 s; 10 minutes of notebook setup and engine start before the first task. Each stage of each
task varies by a seeded log-normal factor (sigma 0.2), and answers run 0.6-1.4x the train outputs' length.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
from dataclasses import dataclass

TRAIN_TOKENS_PER_S, GEN_TOKENS_PER_S, PREFILL_TOKENS_PER_S = 1300.0, 150.0, 5000.0
LOAD_S, OVERHEAD_S, SETUP_S = 20.0, 5.0, 600.0
KAGGLE_LIMIT_S = 12 * 3600
HELD = 0.9  # a load at most this: the budget would have held every task's full work


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Truth:
    """How long one task's stages really take on the simulated machine, per unit of work."""

    step_s: float  # one TTFT optimizer step
    view_s: float  # one sampled view of every test input (prefill and decoding)
    gen_tokens_per_view: float
    load_s: float  # merging and pushing the weights after TTFT
    overhead_s: float  # the rest of the task


def truths(tasks, works, prompt_tokens, speed: float, seed: int) -> dict[str, Truth]:
    """Each task's true stage costs at `speed` x the L4 estimates (seeded noise)."""
    rng = random.Random(seed)
    result = {}
    for task in tasks:
        work = works[task.task_id]
        noise = [math.exp(rng.gauss(0, 0.2)) for _ in range(2)]
        gen = work.gen_tokens_per_view * rng.uniform(0.6, 1.4)
        result[task.task_id] = Truth(work.train_tokens_per_step / TRAIN_TOKENS_PER_S / speed * noise[0],
                                     (gen / GEN_TOKENS_PER_S + prompt_tokens[task.task_id] / PREFILL_TOKENS_PER_S)
                                     / speed * noise[1], gen, LOAD_S / speed, OVERHEAD_S / speed)
    return result


class SimExecutor:
    """The queue's executor, with workers that plan each task as a real worker does (arc_submit.run.budget)
    and take the simulated machine's time for it."""

    def __init__(self, slots, clock, config, tasks, builder, truth, works):
        from arc_submit.run.budget import new_budget

        self.slots, self.clock, self.config, self.builder, self.truth = slots, clock, config, builder, truth
        self.tasks, self.works = {task.task_id: task for task in tasks}, works
        self.budgets = [new_budget(config, clock) for _ in range(slots)]
        for budget in self.budgets:  # the tasks' tokens, as each worker counts them once (Budget.work_of)
            budget.works.update(works)
        self.pending: list = []  # (time, order, event)
        self.order = 0

    def _at(self, when, event):
        heapq.heappush(self.pending, (when, self.order, event))
        self.order += 1

    def start(self, slot):
        from arc_submit.run.executors import Event

        self._at(self.clock(), Event(slot, "ready"))

    def submit(self, slot, message):
        from arc_submit.run.budget import plan_message, record_costs
        from arc_submit.run.executors import Event

        budget, task = self.budgets[slot], self.tasks[message["task"]]
        plan = plan_message(budget, message, task, self.builder, self.config, self.tasks)
        record = self._run(task, plan)
        record_costs(budget, record)
        self._at(self.clock() + record.timings["total_s"], Event(slot, "record", record.to_dict()))

    def _run(self, task, plan):
        """The task's record after the simulated machine ran `plan` (TTFT stops at its `ttft_end`, as the
        trainer does; sampling runs to its end, as greedy sampling does)."""
        from arc_submit.model.training import TrainResult
        from arc_submit.run.record import TaskRecord
        from arc_submit.run.rundir import task_hash

        truth, now = self.truth[task.task_id], self.clock()
        record = TaskRecord(task.task_id, task_hash(task), 0, plan.mode, [plan.reason] if plan.reason else [])
        record.candidates, record.votes = [[] for _ in task.test], [[] for _ in task.test]
        record.attempts = [[[[0]], [[0]]] for _ in task.test]
        if plan.mode == "fallback":
            record.timings = {"total_s": 0.1}
            return record
        steps = plan.steps
        if plan.ttft_end is not None and steps:
            steps = min(steps, max(0, math.ceil((plan.ttft_end - now) / truth.step_s)))
        views = plan.views or self.config.sampling.augmentations
        ttft_s, load_s = steps * truth.step_s, truth.load_s if steps else 0.0
        sample_s = views * truth.view_s
        tokens = round(steps * self.works[task.task_id].train_tokens_per_step)
        record.ttft = TrainResult(steps=steps, tokens=tokens, seconds=ttft_s) if plan.steps else None
        record.prompts_per_input = views
        record.generated_tokens = round(views * truth.gen_tokens_per_view)
        record.timings = {"ttft_s": ttft_s, "load_s": load_s, "sample_s": sample_s,
                          "total_s": ttft_s + load_s + sample_s + truth.overhead_s}
        return record

    def events(self, timeout):
        when, _, event = heapq.heappop(self.pending)
        self.clock.now = max(self.clock.now, when)
        return [event]

    def close(self):
        pass

    @property
    def engine_starts(self):
        return 0


def simulate(tasks, builder, config, truth, workers: int, works: dict) -> dict:
    """One simulated run: the notebook's time budget, the queue, the workers; unused time and cuts."""
    from arc_submit.run.budget import new_budget
    from arc_submit.run.queue import drive

    clock = FakeClock()
    clock.now = SETUP_S
    budget = new_budget(config, clock)
    records = []
    executor = SimExecutor(workers, clock, config, tasks, builder, truth, works)
    drive(executor, tasks, records.append, budget, 0)
    end = clock.now
    modes = [record.mode for record in records]
    return {"unused_s": KAGGLE_LIMIT_S - end, "over_s": max(0.0, end - KAGGLE_LIMIT_S),
            "not_full": sum(mode != "full" for mode in modes),
            "fallback": modes.count("fallback"), "no_ttft": modes.count("no_ttft"), "cut": modes.count("cut"),
            "steps": sum(record.ttft.steps for record in records if record.ttft)}


def notebook_budget() -> float:
    """What the notebook passes as --time-budget after SETUP_S of setup (kaggle/arc-submit.ipynb): all of
    the time left; the preset's run.reserve_fraction is the margin."""
    return KAGGLE_LIMIT_S - SETUP_S


@dataclass
class Workload:
    """The simulated run's tasks, as the planner sees them (config, builder) and as the machine runs them
    (their true costs at the L4 estimates); `full_s`: their full work per worker at those estimates."""

    tasks: list
    config: object
    builder: object
    works: dict
    prompt_tokens: dict
    workers: int
    seed: int
    full_s: float = 0.0

    def truth(self, load: float) -> dict[str, Truth]:
        """The true costs on a machine where the full work is `load` x the workers' time."""
        return truths(self.tasks, self.works, self.prompt_tokens, self.full_s / available() / load, self.seed)

    def run(self, load: float) -> dict:
        result = simulate(self.tasks, self.builder, self.config, self.truth(load), self.workers, self.works)
        result.update(load=load, unused_share=result["unused_s"] / available(),
                      cut_although_fitted=result["not_full"] if load <= HELD else 0)
        return result


def available() -> float:
    return KAGGLE_LIMIT_S - SETUP_S


def workload(n_tasks: int = 240, workers: int = 4, seed: int = 0) -> Workload:
    """`n_tasks` ARC-AGI-2 tasks (a seeded sample of eval and train) under the `kaggle-l4x4` preset, with
    the embedded model's tokenizer counting their tokens."""
    from transformers import AutoTokenizer

    from arc_submit.config import load_config
    from arc_submit.data.tasks import load_dataset
    from arc_submit.model.load import prompt_builder, quiet_transformers
    from arc_submit.model.resolve import resolve, set_offline
    from arc_submit.run.costs import task_work

    set_offline()
    quiet_transformers()
    config = load_config("kaggle-l4x4", [f"run.time_budget={notebook_budget()}"])
    tokenizer = AutoTokenizer.from_pretrained(resolve(config.model.name, config.model.base).base_dir)
    builder = prompt_builder(tokenizer, config.prompt)
    pool = load_dataset("arc-agi-2-eval") + load_dataset("arc-agi-2-train")
    result = Workload([], config, builder, {}, {}, workers, seed)
    for task in random.Random(seed).sample(pool, len(pool)):
        work = task_work(task, builder, config)
        if work is None:
            continue
        example = builder.fit(task.train, task.test[0].input)
        result.works[task.task_id] = work
        result.prompt_tokens[task.task_id] = (len(example.prompt_ids) if example else config.prompt.max_seq_len) * len(task.test)
        result.tasks.append(task)
        if len(result.tasks) == n_tasks:
            break
    steps, views = config.ttft.steps, config.sampling.augmentations
    unit = truths(result.tasks, result.works, result.prompt_tokens, 1.0, seed)
    result.full_s = sum(steps * t.step_s + t.load_s + views * t.view_s + t.overhead_s for t in unit.values()) / workers
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=240)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--loads", default="0.8,0.9,0.95,1.2,1.5,2.0",
                        help="the tasks' full work over the workers' time (1 = exactly the 12 hours less setup)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load = workload(args.tasks, args.workers, args.seed)
    steps = load.config.ttft.steps
    print(f"{len(load.tasks)} tasks, {args.workers} workers; full work at the L4 estimates: {load.full_s / 3600:.1f} h "
          f"per worker against {available() / 3600:.1f} h")
    print("| load | unused at the end | over the limit | tasks below full (cut / no TTFT / fallback) | "
          "cut although it fitted | steps trained |")
    print("|---|---|---|---|---|---|")
    rows = []
    for factor in [float(x) for x in args.loads.split(",")]:
        result = load.run(factor)
        rows.append(result)
        print(f"| {factor:.2f} | {result['unused_s']:.0f} s ({100 * result['unused_share']:.1f}%) | {result['over_s']:.0f} s | "
              f"{result['not_full']} ({result['cut']} / {result['no_ttft']} / {result['fallback']}) | "
              f"{result['cut_although_fitted']} | {result['steps']} of {steps * len(load.tasks)} |")
    print(json.dumps({"tasks": len(load.tasks), "workers": args.workers, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
