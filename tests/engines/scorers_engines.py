"""Helper for test_scoring: a task run on the vLLM engine with its candidates scored on the model in memory
(voting.scorer = "model", the trained adapter kept attached), then the same candidates scored on the engine,
which still holds the task's trained weights; and a task without TTFT, scored on the base model both ways.
Prints both as JSON. Run as a script (vLLM's engine wants its own process):

    python tests/engines/scorers_engines.py --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def both_scorers(runner, task, plan, candidates=None) -> dict:
    """A run of the task; its candidates (or `candidates`: the base model's rarely parse; not sampled on these
    weights, so they bring no log-likelihoods) scored as configured, on the session's scorer for the weights
    served, and on the engine: once as the runner does (candidates found on a view bring their DFS
    log-probability there), once computing every pair."""
    import dataclasses

    from arc_submit.predict.candidates import answer_reserve, prompt_jobs
    from arc_submit.predict.scoring import score_candidates
    from arc_submit.run.runner import derive_seed

    session, config = runner.session, runner.config
    record = runner.run_task(task, plan)
    seed = derive_seed(config.run.seed, task.task_id)
    reserve = answer_reserve(task, session.builder, config.sampling)
    jobs, _ = prompt_jobs(task, session.builder, config.sampling, seed, reserve)
    model = record.view_scores
    if candidates is not None:
        candidates = [[dataclasses.replace(c, sampled_on=None) for c in output] for output in candidates]
        with session.weights.scorer() as scorer:
            model, _ = score_candidates(scorer, session.builder, candidates, jobs, config.voting.scoring_views)
    engine, _ = score_candidates(session.sampler, session.builder, candidates or record.candidates, jobs,
                                 config.voting.scoring_views)
    scored = candidates or record.candidates
    everything = [[dataclasses.replace(c, sampled_on=None) for c in output] for output in scored]
    computed, _ = score_candidates(session.sampler, session.builder, everything, jobs, config.voting.scoring_views)
    brought = sum(c.sampled_on is not None for output in scored for c in output)
    lora = [name for name, _ in session.model.named_parameters() if "lora_" in name]
    return {"mode": record.mode, "failed": record.failed_stages, "engine_holds": session.weights.holds,
            "lora_left": lora, "candidates": record.candidates,
            "model": [{str(k): v for k, v in sorted(output.items())} for output in model],
            "engine": [{str(k): v for k, v in sorted(output.items())} for output in engine],
            "computed": [{str(k): v for k, v in sorted(output.items())} for output in computed], "brought": brought}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from arc_submit.config import load_config
    from arc_submit.data.tasks import Pair, Task
    from arc_submit.run.budget import TaskPlan
    from arc_submit.run.runner import TaskRunner
    from arc_submit.run.session import open_session
    from tests.helpers.tiny_model import build_winner_model

    out = Path(args.out)
    model = build_winner_model(out.parent / "model", "nvarc")
    config = load_config(None, [f'model.name="{model}"', 'prompt.format="nvarc"', "prompt.max_seq_len=2048",
                                "ttft.learning_rate=1e-2", 'ttft.schedule="constant"', "ttft.warmup_fraction=0.0",
                                "ttft.lora_rank=8", "ttft.lora_alpha=16.0", "ttft.augment.geometric=false",
                                "ttft.augment.permute_colours=false", 'sampling.backend="vllm"',
                                "sampling.kv_cache_gib=1.0", "sampling.augmentations=2", 'sampling.method="dfs"',
                                "sampling.min_prob=0.05", 'voting.rule="nvarc"', "voting.scoring_views=2",
                                'voting.scorer="model"', "run.threads=1"])
    grids = [[[1, 2], [3, 4]], [[5, 0, 5], [0, 5, 0]], [[7, 7], [2, 2], [7, 1]]]
    task = Task("copy", [Pair(g, g) for g in grids], [Pair(grids[0])])
    runner = TaskRunner(config, open_session(config, progress=False))
    trained = both_scorers(runner, task, TaskPlan("full", 100, None))
    base = both_scorers(runner, task, TaskPlan("no_ttft", 0, None), trained.pop("candidates"))
    base.pop("candidates")
    out.write_text(json.dumps({"trained": trained, "base": base}))


if __name__ == "__main__":
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    main()
