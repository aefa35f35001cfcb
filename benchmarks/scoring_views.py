"""Views per call benchmark: scoring a test input's candidates under its views (`--views`, 8) on vLLM through
the runner's own `score_candidates`, a view per engine call (`batches_views` off, as before) against every view
in one call (`VLLMSampler`'s default), on the N smallest ARC-AGI-1 eval tasks with the `cpu` preset's engine and
untrained weights. Each task's views are sampled greedily (their prompts then sit in the prefix cache, as in
a run, and a greedy grid brings its log-likelihood on its own view), and the candidates are the greedy grids
plus each test output's 8 rotations and reflections (an untrained model's answers rarely parse); both ways
score the same candidates on fresh caches after sampling again, in alternating order task by task.

    .venv/bin/python benchmarks/scoring_views.py --tasks 8 [--views 32]

Prints a line per task (each way's seconds so far, summed over the tasks done) and a JSON object as the last
line: seconds each way, engine calls, the ratio, and the largest difference between the two ways' scores.
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
    from arc_submit.data.tasks import load_dataset, smallest
    from arc_submit.predict.candidates import Candidate, answer_reserve, find_candidates, prompt_jobs
    from arc_submit.predict.scoring import score_candidates
    from arc_submit.run.session import open_session

    config = load_config("cpu", args.set)
    session = open_session(config, progress=False)
    sampler, builder = session.sampler, session.builder
    greedy = dataclasses.replace(config.sampling, augmentations=args.views, method="sample", temperature=0.0,
                                 samples=1)
    calls, run = [0], sampler._run

    def counted(*given, **named):
        calls[0] += 1
        return run(*given, **named)

    sampler._run = counted
    ways = {"per_view": False, "batched": True}  # way: batches_views
    seconds, engine_calls, difference = dict.fromkeys(ways, 0.0), dict.fromkeys(ways, 0), 0.0
    for number, task in enumerate(smallest(load_dataset("arc-agi-1-eval"), args.tasks)):
        jobs = prompt_jobs(task, builder, greedy, 0, answer_reserve(task, builder, greedy))[0]
        scores = {}
        for way in list(ways) if number % 2 == 0 else list(ways)[::-1]:
            sampler.llm.reset_prefix_cache()
            candidates = find_candidates(sampler, builder, task, jobs, greedy)[0]
            for output, pair in zip(candidates, task.test):
                output += [Candidate(Augmentation(transform).apply_grid(pair.output), None, Augmentation())
                           for transform in TRANSFORMS]
            sampler.batches_views, calls[0], start = ways[way], 0, time.perf_counter()
            scores[way] = score_candidates(sampler, builder, candidates, jobs, args.views)[0]
            seconds[way] += time.perf_counter() - start
            engine_calls[way] += calls[0]
        difference = max([difference] + [abs(a - b) for per_view, batched in zip(scores["per_view"], scores["batched"])
                                          for key in per_view for a, b in zip(per_view[key], batched[key])])
        print(task.task_id, {way: round(value, 2) for way, value in seconds.items()}, flush=True)
    print(json.dumps({"tasks": args.tasks, "seconds": seconds, "engine_calls": engine_calls,
                      "batched_over_per_view": seconds["batched"] / seconds["per_view"],
                      "largest_difference": difference}))


if __name__ == "__main__":
    main()
