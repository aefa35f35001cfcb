"""Views per call benchmark: scoring a test input's candidates under its 8 views on vLLM, a view per engine
call (`Sampler.score_views`, the base class's loop, as before) against every view in one call
(`VLLMSampler.score_views`), on the N smallest ARC-AGI-1 eval tasks with the `cpu` preset's engine and
untrained weights. Each task's views are sampled greedily (their prompts then sit in the prefix cache, as in
a run), and the candidates are the greedy grids plus each test output's 8 rotations and reflections (an
untrained model's answers rarely parse); both ways score the same candidates on fresh caches after sampling
again, in alternating order task by task.

    .venv/bin/python benchmarks/scoring_views.py --tasks 8

Prints a line per task and a JSON object as the last line: seconds each way, engine calls, the ratio, and
the largest difference between the two ways' scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()

    from arc_submit.config import load_config
    from arc_submit.data.augment import TRANSFORMS, Augmentation
    from arc_submit.data.tasks import grid_key, load_dataset, smallest
    from arc_submit.predict.backends import Sampler
    from arc_submit.predict.candidates import Candidate, answer_reserve, find_candidates, prompt_jobs
    from arc_submit.run.stack import open_stack

    config = load_config("cpu", args.set)
    stack = open_stack(config, progress=False)
    sampler, builder = stack.sampler, stack.builder
    greedy = dataclasses.replace(config.sampling, augmentations=args.views, method="sample", temperature=0.0,
                                 samples=1)
    calls, run = [0], sampler._run

    def counted(*given, **named):
        calls[0] += 1
        return run(*given, **named)

    sampler._run = counted
    ways = {"per_view": lambda views: Sampler.score_views(sampler, views), "batched": sampler.score_views}
    seconds, engine_calls, difference = dict.fromkeys(ways, 0.0), dict.fromkeys(ways, 0), 0.0
    for number, task in enumerate(smallest(load_dataset("arc-agi-1-eval"), args.tasks)):
        jobs = prompt_jobs(task, builder, greedy, 0, answer_reserve(task, builder, greedy))[0]
        scores = {}
        for way in list(ways) if number % 2 == 0 else list(ways)[::-1]:
            sampler.llm.reset_prefix_cache()
            candidates = find_candidates(sampler, builder, task, jobs, greedy)[0]
            views = []
            for index, (output, pair) in enumerate(zip(candidates, task.test)):
                grids = {grid_key(c.grid): c.grid for c in output if c.grid}
                grids.update((grid_key(g), g) for g in (Augmentation(t).apply_grid(pair.output) for t in TRANSFORMS))
                views += [(job.prompt_ids, [builder.written_ids(job.augmentation.apply_grid(grid))
                                            for grid in grids.values()]) for job in jobs if job.test_index == index]
            calls[0], start = 0, time.perf_counter()
            scores[way] = ways[way](views)
            seconds[way] += time.perf_counter() - start
            engine_calls[way] += calls[0]
        difference = max([difference] + [abs(a - b) for x, y in zip(scores["per_view"], scores["batched"])
                                         for a, b in zip(x, y)])
        print(task.task_id, f"{len(views)} views, {sum(len(a) for _, a in views)} answers",
              {way: round(value, 2) for way, value in seconds.items()}, flush=True)
    print(json.dumps({"tasks": args.tasks, "seconds": seconds, "engine_calls": engine_calls,
                      "batched_over_per_view": seconds["batched"] / seconds["per_view"],
                      "largest_difference": difference}))


if __name__ == "__main__":
    main()
