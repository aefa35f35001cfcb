"""The time budget with a fake clock: work is cut step by step and the run ends within its budget; its costs
are per token (arc_submit.run.costs), the same model `plan` uses."""

from __future__ import annotations

import pytest

from arc_submit.run.budget import MODES, Budget
from arc_submit.run.costs import Meter, Rates, TaskWork


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TRAIN_PER_STEP, GEN_PER_VIEW = 400.0, 60.0  # tokens of every simulated task


def simulate(budget_s: float, tasks: int, steps: int, step_s: float, sample_s: float, other_s: float = 1.0):
    """Run the planner over `tasks` tasks whose stages take the given (fake) seconds."""
    clock = FakeClock()
    budget = Budget(budget_s, steps, clock, reserve_fraction=0.05)
    clock.now += 20.0  # model load and engine start
    plans = []
    for index in range(tasks):
        plan = budget.plan(tasks - index, TaskWork(TRAIN_PER_STEP, GEN_PER_VIEW))
        plans.append(plan)
        start = clock.now
        done = 0
        for _ in range(plan.steps):  # TTFT stops at its end, as the trainer does
            if plan.ttft_end is not None and clock.now >= plan.ttft_end:
                break
            clock.now += step_s
            done += 1
        ttft = clock.now - start
        sampled = plan.mode != "fallback"
        clock.now += sample_s + other_s if sampled else 0.01  # a fallback only writes the submission
        budget.meter.add(done, done * TRAIN_PER_STEP, ttft, 1 if sampled else 0, GEN_PER_VIEW if sampled else 0,
                         sample_s if sampled else 0.0, clock.now - start)
    return plans, clock.now - 1000.0


def test_no_budget_means_full_plans():
    plans, _ = simulate(0, tasks=5, steps=10, step_s=1, sample_s=5)
    assert {p.mode for p in plans} == {"full"} and all(p.steps == 10 for p in plans)


def test_ample_budget_keeps_every_step():
    plans, elapsed = simulate(10_000, tasks=10, steps=10, step_s=1, sample_s=5)
    assert all(p.mode == "full" and p.steps == 10 for p in plans) and elapsed < 10_000


@pytest.mark.parametrize("budget_s", [60, 120, 200, 300, 400])
def test_tight_budgets_cut_then_skip_then_fall_back_and_end_in_time(budget_s):
    plans, elapsed = simulate(budget_s, tasks=20, steps=10, step_s=1.0, sample_s=5.0)
    assert elapsed <= budget_s
    order = [MODES.index(p.mode) for p in plans[1:]]  # after the first, unmeasured task
    assert order == sorted(order), [p.mode for p in plans]  # degrades monotonically, never recovers late
    assert all(0 <= p.steps <= 10 for p in plans)


def test_the_degradation_steps_all_appear():
    modes = set()
    for budget_s in (60, 150, 230, 400):
        plans, _ = simulate(budget_s, tasks=20, steps=10, step_s=1.0, sample_s=5.0)
        modes |= {p.mode for p in plans}
    assert modes == set(MODES)


def test_a_spent_budget_gives_fallbacks_only():
    clock = FakeClock()
    budget = Budget(100, 10, clock)
    clock.now += 200
    assert budget.plan(3).mode == "fallback"


def test_work_is_not_cut_while_the_remaining_tasks_fit_even_on_a_slow_machine():
    """The same plans on a fast and a 5 times slower machine when the budget covers the slower one."""
    fast, _ = simulate(2000, tasks=10, steps=10, step_s=1, sample_s=5)
    slow, elapsed = simulate(2000, tasks=10, steps=10, step_s=5, sample_s=25)
    assert elapsed < 2000
    assert [(p.mode, p.steps) for p in fast] == [(p.mode, p.steps) for p in slow] == [("full", 10)] * 10


def test_views_are_cut_before_a_task_falls_back():
    clock = FakeClock()
    budget = Budget(1000, 10, clock, views=8)
    budget.meter.add(10, 1000, 10.0, 8, 800, 80.0, 91.0)  # 100 tokens per view at 0.1 s each, 1 s more
    clock.now += 1000 * 0.95 - 45  # 45 s left
    plan = budget.plan(1)
    assert plan.mode == "no_ttft" and plan.views == 4 and "4 of 8 views" in plan.reason


def test_a_larger_task_gets_a_larger_share_when_the_budget_binds():
    """Costs are per token: of two tasks planned at the same moment, the one with twice the tokens gets
    nearly twice the time (its share of the time left by its cost against the others'), where a per-task
    cost would give both the same."""
    def plan_for(work: TaskWork):
        clock = FakeClock()
        budget = Budget(1000, 10, clock, views=4)
        budget.meter.add(10, 10 * 100, 10.0, 4, 4 * 50, 20.0, 31.0)  # 0.01 s per trained, 0.1 s per new token
        clock.now += 950 - 500  # 500 s left for 20 tasks of about 31 s: 25 s each
        return clock.now, budget.plan(20, work)

    now, small = plan_for(TaskWork(100, 50))
    _, large = plan_for(TaskWork(200, 100))
    assert small.mode == large.mode == "cut"
    assert small.end - now == pytest.approx(500 * 31 / (20 * 31))
    assert large.end - now == pytest.approx(500 * 61 / (61 + 19 * 31))  # 1.9 times the small one's


def test_measured_rates_turn_a_tasks_tokens_back_into_its_seconds():
    """The meter's rates from finished tasks of one kind predict such a task's measured time exactly."""
    meter = Meter()
    for steps, views in [(8, 4), (16, 8), (32, 2)]:
        train, gen = steps * 300, views * 40
        meter.add(steps, train, train * 0.002, views, gen, gen * 0.05, train * 0.002 + gen * 0.05 + 3.0)
    rates = meter.rates()
    assert rates.train_s_per_token == pytest.approx(0.002) and rates.gen_s_per_token == pytest.approx(0.05)
    assert rates.overhead_s == pytest.approx(3.0)
    assert rates.seconds(TaskWork(300, 40), 8, 4) == pytest.approx(8 * 300 * 0.002 + 4 * 40 * 0.05 + 3.0)
    assert meter.mean_work() == TaskWork(300, 40)
    assert Rates.per_second(500, 20, 3.0) == Rates(0.002, 0.05, 3.0)


def test_queued_tasks_are_counted_at_their_own_size_not_at_the_largest_first_ones():
    """The queue hands out the largest tasks first, so the finished tasks' mean is larger than the tasks
    still queued: counted at their own size they fit, where counted at the mean they would be cut."""
    clock = FakeClock()
    budget = Budget(1000, 10, clock, views=1)
    budget.meter.add(10, 10 * 1000, 10.0, 1, 100, 10.0, 21.0)  # a large task: 1 s a step, 10 s to sample
    clock.now += 400  # 550 s left before the reserve
    small = [TaskWork(100, 10)] * 40  # 0.1 s a step, 1 s to sample, 1 s more: 3 s each, 120 s in all
    assert budget.plan(41, TaskWork(100, 10), small).mode == "full"
    assert budget.plan(41, TaskWork(100, 10)).mode != "full"  # at the mean: 40 x 21 s do not fit 550 s


def test_the_others_are_shared_by_the_workers_and_running_tasks_count_half():
    clock = FakeClock()
    budget = Budget(1000, 10, clock, views=1)
    budget.meter.add(10, 10 * 100, 1.0, 1, 10, 1.0, 3.0)  # 3 s a task
    clock.now += 950 - 100  # 100 s left
    work, others = TaskWork(100, 10), [TaskWork(100, 10)] * 40  # 120 s of others
    assert budget.plan(41, work, others, workers=1).mode == "cut"
    assert budget.plan(41, work, others, workers=2).mode == "full"  # 60 s each
    assert budget.plan(41, work, others[:20], others[:20]).mode == "full"  # 60 s queued + 20 x 3 s half done
    assert budget.plan(41, work, others[:40]).mode == "cut"  # the same 40 tasks all queued: 120 s


def test_the_driver_measures_every_finished_task_for_every_worker():
    """A worker plans from the driver's meter (all finished tasks), not only from the tasks it ran."""
    from arc_submit.run.budget import plan_message

    meter = Meter().add(10, 1000, 10.0, 1, 100, 10.0, 21.0)
    assert Meter.from_dict(meter.to_dict()) == meter
    clock = FakeClock()
    budget = Budget(0, 10, clock)
    plan = plan_message(budget, {"task": "t", "elapsed": 0.0, "remaining": 1, "meter": meter.to_dict()},
                        None, None, None, {})
    assert budget.meter == meter and plan.mode == "full"
