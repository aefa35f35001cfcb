"""Selection benchmark: how the rules after arc24 turn candidates into attempts, on CPU with the embedded
model after TTFT. Each task is trained once (the `cpu` preset, seed 0); the same trained weights then give
greedy candidates under balanced views and DFS candidates under the same views; every distinct candidate is
scored under the first 8 views; and five setups are compared on the same candidates:

    greedy + vote, greedy + poe, greedy + nvarc, DFS + vote, DFS + poe

    make bench-selection     # or: .venv/bin/python benchmarks/selection.py --tasks 20 --out runs/bench-selection
    .venv/bin/python benchmarks/selection.py --tasks 4 --local 4 --scorers --out runs/bench-scorers

Prints a Markdown table (score, pass_n = the truth among the candidates, vote_1, vote_2, seconds per task by
stage) for the 8 local-submission tasks and for all the tasks, and writes the per-task results as JSON
(OUT/results.json; a run resumes from it, and prints the tables without loading a model when it is complete).
With --scorers the candidates are scored on the model in memory (voting.scorer = "model") and on the engine,
and a third table compares the two.
The results behind benchmarks/RESULTS.md's tables: benchmarks/results/selection-cpu-seed0.json (and, with
--scorers, scorers-cpu-seed0.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SETUPS = [("greedy", "vote"), ("greedy", "poe"), ("greedy", "nvarc"), ("dfs", "vote"), ("dfs", "poe")]


def run_task(session, task, seed: int, min_prob: float, compare: bool = False) -> dict:
    """Train once; candidates greedy and by DFS; their scores under the views; each setup's attempts. Every
    stage is the runner's own (arc_submit.run.runner, arc_submit.predict): only the bookkeeping is here."""
    from arc_submit.run.budget import Budget
    from arc_submit.run.record import TaskRecord
    from arc_submit.run.runner import TaskRunner, derive_seed, seed_everything

    config = session.config
    seed = derive_seed(seed, task.task_id)
    seed_everything(seed)
    seconds = {}
    start = time.perf_counter()
    record = TaskRecord(task.task_id, "", seed, "full")
    runner = TaskRunner(config, session)
    with session.weights.for_task(task.task_id) as weights:
        runner.train_and_serve(weights, task, Budget(0, config.ttft.steps).plan(1), seed, record, scored=True)
        seconds["ttft"] = time.perf_counter() - start
        return _setups(session, task, seed, min_prob, weights, seconds, compare)


def _setups(session, task, seed: int, min_prob: float, weights, seconds: dict, compare: bool) -> dict:
    """run_task's candidates, scores and attempts on the trained weights (`weights`: the task's, served)."""
    import dataclasses

    from arc_submit.predict.candidates import answer_reserve, find_candidates, prompt_jobs
    from arc_submit.predict.sampler import Serving
    from arc_submit.predict.scoring import score_candidates
    from arc_submit.predict.selection import needs_views, select_attempts

    config, adapter = session.config, weights.adapter
    builder, sampling = session.builder, config.sampling
    jobs, _ = prompt_jobs(task, builder, sampling, seed, answer_reserve(task, builder, sampling))
    methods = {"greedy": sampling, "dfs": dataclasses.replace(sampling, method="dfs", min_prob=min_prob)}
    result = {"task_id": task.task_id, "seconds": seconds, "setups": {}}
    for method, method_config in methods.items():
        start = time.perf_counter()
        candidates, _, _ = find_candidates(session.sampler, builder, task, jobs, method_config, Serving(adapter))
        seconds[method] = time.perf_counter() - start
        start = time.perf_counter()
        with weights.scorer() as scorer:  # voting.scorer: on the engine, or on the trained model in memory
            views, _ = score_candidates(scorer, builder, candidates, jobs, config.voting.scoring_views,
                                        Serving(adapter))
        seconds[f"{method}_scoring"] = time.perf_counter() - start
        if compare:
            result.setdefault("scorers", {})[method] = compare_scorers(session, task, candidates, jobs, adapter, views)
        for rule in ("vote", "poe", "nvarc"):
            if (method, rule) not in SETUPS:
                continue
            votes, attempts, _ = select_attempts(task, candidates, rule, views if needs_views(rule) else None)
            solved, passed, votes1, votes2 = [], [], [], []
            for pair, output, ranked, chosen in zip(task.test, candidates, votes, attempts):
                grids = [vote.grid for vote in ranked]
                solved.append(pair.output in chosen)
                passed.append(any(c.grid == pair.output for c in output))
                votes1.append(pair.output in grids[:1])
                votes2.append(pair.output in grids[:2])
            result["setups"][f"{method}+{rule}"] = {
                "score": _mean(solved), "pass_n": _mean(passed), "vote_1": _mean(votes1), "vote_2": _mean(votes2),
                "candidates": sum(len(o) for o in candidates), "parsed": sum(bool(c.grid) for o in candidates for c in o)}
    return result


def compare_scorers(session, task, candidates, jobs, adapter, on_model: list) -> dict:
    """--scorers: the candidates scored on the engine too, first reading its prefix cache, then with a
    prefill of every (view, candidate) as before (`on_model`: their scores on the model in memory,
    voting.scorer = "model"); the seconds each took, the largest difference of either from the model's, and
    whether poe and nvarc choose the same attempts on the engine (cache read) and on the model."""
    from arc_submit.predict.sampler import Serving, cache_reading
    from arc_submit.predict.scoring import sampled_logprobs, score_candidates
    from arc_submit.predict.selection import select_attempts

    def on_engine_timed(reads_cache: bool) -> tuple[list, float]:
        with cache_reading(session.sampler, reads_cache):
            start = time.perf_counter()
            scored, _ = score_candidates(session.sampler, session.builder, candidates, jobs,
                                         session.config.voting.scoring_views, Serving(adapter))
            return scored, time.perf_counter() - start

    on_engine, seconds = on_engine_timed(reads_cache=True)  # the sampled views' prompts from the prefix cache
    uncached, uncached_seconds = on_engine_timed(reads_cache=False)  # a prefill per (view, candidate), as before
    differences = [abs(a - b) for engine, model in zip(uncached, on_model) for key in engine
                   for a, b in zip(engine[key], model[key], strict=True)]
    differences += [abs(a - b) for engine, model in zip(on_engine, on_model) for key in engine
                    for a, b in zip(engine[key], model[key], strict=True)]
    same = {rule: select_attempts(task, candidates, rule, on_engine)[1] == select_attempts(task, candidates, rule,
                                                                                           on_model)[1]
            for rule in ("poe", "nvarc")}
    return {"engine_scoring": seconds, "engine_uncached_scoring": uncached_seconds, "scores": len(differences) // 2,
            "sampled_scores": sum(len(known) for output in candidates for known in sampled_logprobs(output).values()),
            "cache_reads": session.sampler.scores_from_cache, "largest_difference": max(differences, default=0.0),
            "same_attempts": same}


def scorers_table(results: list[dict]) -> str:
    """--scorers: per method, the seconds of sampling, of scoring on the model, on the engine reading its
    prefix cache and on the engine with a prefill per (view, candidate), summed over the tasks; the ratios;
    the (view, grid) pairs scored, and how many of them sampling brought (results from before that column
    show "-")."""
    lines = ["| candidates | sampling s | model scoring s | engine scoring s | engine, a prefill per pair s | "
             "model ÷ sampling | engine ÷ sampling | a prefill per pair ÷ sampling | pairs / from sampling | "
             "largest difference | same attempts |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in ("greedy", "dfs"):
        sampling = sum(r["seconds"][method] for r in results)
        model = sum(r["seconds"][f"{method}_scoring"] for r in results)
        scorers = [r["scorers"][method] for r in results]
        engine = sum(s["engine_scoring"] for s in scorers)
        uncached = sum(s.get("engine_uncached_scoring", s["engine_scoring"]) for s in scorers)
        largest = max(s["largest_difference"] for s in scorers)
        same = all(all(s["same_attempts"].values()) for s in scorers)
        pairs = sum(s["scores"] for s in scorers)
        brought = sum(s["sampled_scores"] for s in scorers) if all("sampled_scores" in s for s in scorers) else "-"
        lines.append(f"| {method} | {sampling:.1f} | {model:.1f} | {engine:.1f} | {uncached:.1f} | "
                     f"{model / sampling:.2f} | {engine / sampling:.2f} | {uncached / sampling:.2f} | "
                     f"{pairs} / {brought} | {largest:.1e} | {'all' if same else 'not all'} |")
    return "\n".join(lines)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def table(results: list[dict], title: str) -> str:
    lines = [f"**{title}** ({len(results)} tasks)", "",
             "| setup | score | pass_n | vote_1 | vote_2 | candidates per task | s/task: ttft | sampling | scoring |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, rule in SETUPS:
        name = f"{method}+{rule}"
        rows = [r["setups"][name] for r in results]
        metric = {key: _mean([row[key] for row in rows]) for key in ("score", "pass_n", "vote_1", "vote_2", "candidates")}
        seconds = {key: _mean([r["seconds"].get(key, 0.0) for r in results])
                   for key in ("ttft", method, f"{method}_scoring")}
        scoring = seconds[f"{method}_scoring"] if rule != "vote" else 0.0
        lines.append(f"| {method} + {rule} | {metric['score']:.3f} | {metric['pass_n']:.3f} | {metric['vote_1']:.3f} | "
                     f"{metric['vote_2']:.3f} | {metric['candidates']:.1f} | {seconds['ttft']:.0f} | "
                     f"{seconds[method]:.0f} | {scoring:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="the N smallest ARC-AGI-1 eval tasks")
    parser.add_argument("--local", type=int, default=8, help="the first table covers the smallest N (local-submission)")
    parser.add_argument("--min-prob", type=float, default=0.1, help="DFS threshold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--out", default="runs/bench-selection")
    parser.add_argument("--scorers", action="store_true", help="score on the model in memory (voting.scorer = "
                        "'model') and on the engine too: seconds, largest difference, same attempts")
    args = parser.parse_args()
    from arc_submit.config import load_config
    from arc_submit.data.tasks import load_dataset
    from arc_submit.run.session import open_session

    scorer = ['voting.scorer="model"'] if args.scorers else []
    config = load_config(args.config, [*args.set, *scorer], **{"run.seed": args.seed})
    tasks = sorted(load_dataset("arc-agi-1-eval"), key=lambda t: (t.cells(), t.task_id))[: args.tasks]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else []
    remaining = tasks[len(done):]
    session = open_session(config, progress=False, run_dir=out) if remaining else None
    for task in remaining:
        done.append(run_task(session, task, args.seed, args.min_prob, args.scorers))
        (out / "results.json").write_text(json.dumps(done, indent=1))
        print(task.task_id, json.dumps({k: v["score"] for k, v in done[-1]["setups"].items()}), flush=True)
    text = table(done[: args.local], "local-submission tasks") + "\n\n" + table(done, f"{len(done)} smallest ARC-AGI-1 eval tasks")
    if args.scorers:
        text += "\n\n" + scorers_table(done)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
