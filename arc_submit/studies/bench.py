"""Benchmarks measured side by side in one run; ratios, not absolute times, are the result.

    python -m arc_submit bench --config cpu            # minutes on 2 cores (benchmarks/RESULTS.md); the rules
                                                       # part is a run of its own (--rule-tasks 0 skips it);
                                                       # last line is JSON

- sampling: our sampler (the config's backend, vLLM by default) against plain transformers `generate`
  on the same model, prompts and number of new tokens (prefill included), as new tokens per second; and
  the two parts apart: the prefill (one new token) and the decoding (the rest), each as a ratio;
- dfs: DFS (the config's min_prob and max_candidates) against greedy sampling of the same views, as
  seconds and candidates found; on vLLM also DFS with every branch decoded to its end (as before
  FloorStop), to show what ending a branch at its floor saves;
- scoring: every distinct candidate (greedy's, and each test output under the 8 rotations/reflections as
  stand-ins for a trained model's) scored under `voting.scoring_views` views (the poe and
  nvarc rules' cost), on the sampling engine (reading its prefix cache where vLLM can, and, to compare,
  with a prefill per view and candidate as before) and on the transformers model in memory (prompt
  prefilled once per view), against the sampling that found them; the views are not the sampled ones,
  so no prompt is in the cache beforehand;
- ttft: our trainer against a plain PyTorch + peft loop on the same examples, as trained tokens/s;
- push memory: peak resident memory of one push of merged weights, held whole (as before) against
  streamed tensor by tensor (as now);
- adapter serving (vLLM only): sampling with the LoRA served by vLLM against the merged weights pushed
  into the live engine, and what a push costs;
- pipeline: a run of a few tasks: per-task overhead (wall time outside optimizer steps and token
  generation, as a share of task time), the same for the whole run, and engine starts;
- rules: the generated "rules" dataset (flip, transpose, rotate 180 degrees, recolour: tasks of the
  ARC-lite kind) run with the config's own TTFT steps: how many it solves, tokens-to-solution's measure.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from arc_submit.config import Config


def setup_session(config: Config):
    from arc_submit.data.tasks import load_dataset, smallest
    from arc_submit.run.session import open_session

    session = open_session(config, progress=False)
    return session, smallest(load_dataset("arc-agi-1-eval"), 4)


def sample_prompts(session, tasks, augmentations: int) -> list[list[int]]:
    from arc_submit.predict.candidates import answer_reserve, prompt_jobs

    sampling = dataclasses.replace(session.config.sampling, augmentations=augmentations)
    prompts = []
    for task in tasks:
        jobs, _ = prompt_jobs(task, session.builder, sampling, 0, answer_reserve(task, session.builder, sampling))
        prompts += [job.prompt_ids for job in jobs]
    return prompts


def transformers_generate(model, prompts: list[list[int]], new_tokens: int, pad_id: int) -> float:
    """Plain batched `generate` (left padding, greedy, exactly `new_tokens`); seconds taken."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(ids.to(model.device), attention_mask=mask.to(model.device), do_sample=False,
                       max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=pad_id)
    return time.perf_counter() - start


def bench_sampling(session, prompts: list[list[int]], new_tokens: int) -> dict:
    """Our sampler against plain `generate` on the same prompts: the whole (prefill and `new_tokens` tokens
    each) as `ratio`, and its two parts, each measured the same way: the prefill alone (one new token) as
    `prefill_ratio`, and the rest (whole minus prefill) as `decode_ratio`. Each prefix cache emptied first."""
    from arc_submit.predict.sampler import Request

    def ours(tokens: int) -> float:
        if hasattr(session.sampler, "llm"):
            session.sampler.llm.reset_prefix_cache()  # every prompt prefilled, as `generate` prefills it
        requests = [Request(p, 1, 0.0, tokens, i, ignore_eos=True) for i, p in enumerate(prompts)]
        start = time.perf_counter()
        session.sampler.generate(requests)
        return time.perf_counter() - start

    session.sampler.generate([Request(prompts[0], 1, 0.0, 4, 0, ignore_eos=True)])  # warm-up, not timed
    pad = session.builder.tokenizer.pad_token_id
    pad = pad if pad is not None else session.builder.tokenizer.eos_token_id
    transformers_generate(session.model, prompts[:1], 4, pad)  # warm-up
    whole, prefill = ours(new_tokens), ours(1)
    baseline, baseline_prefill = (transformers_generate(session.model, prompts, tokens, pad)
                                  for tokens in (new_tokens, 1))
    tokens = len(prompts) * new_tokens
    return {"prompts": len(prompts), "new_tokens_each": new_tokens,
            "prompt_tokens_mean": float(np.mean([len(p) for p in prompts])),
            "ours_tokens_per_s": tokens / whole, "transformers_tokens_per_s": tokens / baseline,
            "ratio": baseline / whole, "ours_prefill_s": prefill, "transformers_prefill_s": baseline_prefill,
            "prefill_ratio": baseline_prefill / prefill,
            "decode_ratio": (baseline - baseline_prefill) / max(whole - prefill, 1e-9)}


def bench_dfs(session, tasks, augmentations: int) -> dict:
    """DFS against greedy sampling of the same augmented prompts (each task's views), on the config's
    backend and weights: seconds and candidates found by each."""
    from arc_submit.predict.candidates import answer_reserve, find_candidates, prompt_jobs

    sampling = dataclasses.replace(session.config.sampling, augmentations=augmentations)
    dfs = dataclasses.replace(sampling, method="dfs", temperature=0.0, samples=1)
    settings = {"greedy": dataclasses.replace(sampling, method="sample", temperature=0.0, samples=1), "dfs": dfs}
    if hasattr(session.sampler, "cuts_branches"):  # vLLM: also DFS with every branch decoded to its end (as before)
        settings["dfs_uncut"] = dfs
    work = [(task, prompt_jobs(task, session.builder, sampling, 0, answer_reserve(task, session.builder, sampling))[0])
            for task in tasks]
    find_candidates(session.sampler, session.builder, tasks[0], work[0][1][:1], settings["greedy"])  # warm-up
    result: dict = {"tasks": len(tasks), "prompts": sum(len(jobs) for _, jobs in work),
                    "min_prob": sampling.min_prob, "max_candidates": sampling.max_candidates}
    grids = {}
    for name, config in settings.items():
        if name == "dfs_uncut":
            session.sampler.cuts_branches = False
        if hasattr(session.sampler, "llm"):
            session.sampler.llm.reset_prefix_cache()  # each setting prefills its prompts itself
        seconds, grids[name] = 0.0, []
        for task, jobs in work:
            start = time.perf_counter()
            found, _, _ = find_candidates(session.sampler, session.builder, task, jobs, config)
            seconds += time.perf_counter() - start
            grids[name] += [[c.grid for c in output] for output in found]
        result[f"{name}_s"], result[f"{name}_candidates"] = seconds, sum(len(g) for g in grids[name])
    if "dfs_uncut" in settings:
        session.sampler.cuts_branches = True
        result["uncut_ratio"] = result["dfs_uncut_s"] / result["greedy_s"]
        result["uncut_same_candidates"] = grids["dfs"] == grids["dfs_uncut"]
    result["ratio"] = result["dfs_s"] / result["greedy_s"]
    return result


def bench_scoring(session, tasks, augmentations: int, views: int) -> dict:
    """Seconds to score each task's distinct candidates under `views` views of its test inputs (other views
    than the sampled ones), on the sampler (and, where it reads its prefix cache to score, on the sampler
    with a prefill per view and candidate) and on the transformers model in memory (the same base weights),
    against the seconds greedy sampling of `augmentations` views took; the largest difference from the
    model's scores. The candidates are the
    greedy ones that parse and, as stand-ins for a trained model's (the cost is in their lengths), each
    test output under the 8 rotations and reflections."""
    from arc_submit.data.augment import TRANSFORMS, Augmentation
    from arc_submit.data.tasks import grid_key
    from arc_submit.predict.candidates import Candidate, answer_reserve, find_candidates, prompt_jobs
    from arc_submit.predict.prefix_scoring import ModelScorer
    from arc_submit.predict.sampler import cache_reading
    from arc_submit.predict.scoring import score_candidates

    greedy = dataclasses.replace(session.config.sampling, augmentations=augmentations, method="sample",
                                 temperature=0.0, samples=1)
    scoring = dataclasses.replace(greedy, augmentations=views)
    scorers = {"engine": (session.sampler, True)}  # name: (scorer, whether the engine reads its prefix cache)
    if getattr(session.sampler, "scores_from_cache", False):
        scorers["engine_uncached"] = (session.sampler, False)  # a prefill per (view, candidate), as before
    scorers["model"] = (ModelScorer(session.model), True)
    seconds = {"sample_s": 0.0, **{f"{name}_score_s": 0.0 for name in scorers}}
    scores: dict[str, list] = {name: [] for name in scorers}
    grids = 0
    for task in tasks:
        jobs = prompt_jobs(task, session.builder, greedy, 0, answer_reserve(task, session.builder, greedy))[0]
        start = time.perf_counter()
        candidates = find_candidates(session.sampler, session.builder, task, jobs, greedy)[0]
        seconds["sample_s"] += time.perf_counter() - start
        for output, pair in zip(candidates, task.test):  # an untrained model's answers rarely parse: stand-ins
            output += [Candidate(Augmentation(transform).apply_grid(pair.output), None, Augmentation())
                       for transform in TRANSFORMS]
        grids += sum(len({grid_key(c.grid) for c in output if c.grid}) for output in candidates)
        views_jobs = prompt_jobs(task, session.builder, scoring, 1, answer_reserve(task, session.builder, scoring))[0]
        for name, (scorer, reads_cache) in scorers.items():
            with cache_reading(scorer, reads_cache):
                start = time.perf_counter()
                scored, _ = score_candidates(scorer, session.builder, candidates, views_jobs, views)
                seconds[f"{name}_score_s"] += time.perf_counter() - start
            scores[name] += [value for output in scored for key in sorted(output) for value in output[key]]
    difference = max((abs(a - b) for name in scorers if name != "model" for a, b in zip(scores[name], scores["model"])),
                     default=0.0)
    return {"tasks": len(tasks), "views": views, "candidate_grids": grids, "scores": len(scores["model"]), **seconds,
            "largest_difference": difference,
            **{f"{name}_ratio": seconds[f"{name}_score_s"] / seconds["sample_s"] for name in scorers}}


def plain_training_loop(model, examples, config, pad_id: int, seed: int) -> tuple[int, float]:
    """The loop a user writes by hand: forward, backward, AdamW step; (tokens, seconds)."""
    import torch

    from arc_submit.model.training import attach_adapter, collate, detach_adapter

    peft_model = attach_adapter(model, config, seed=seed)
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=config.learning_rate)
    tokens, start = 0, time.perf_counter()
    for example in examples:
        batch = collate([example], pad_id)
        peft_model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += example.length
    seconds = time.perf_counter() - start
    detach_adapter(peft_model)
    return tokens, seconds


def bench_ttft(session, tasks, steps: int, seed: int = 0) -> dict:
    from arc_submit.model.training import config_stream

    config = session.config.ttft
    stream = config_stream(tasks, session.builder, np.random.default_rng(seed), config)
    examples = [next(stream) for _ in range(steps)]
    plain_training_loop(session.model, examples[:1], config, session.trainer.pad_id, seed)  # warm-up
    plain_tokens, plain_seconds = plain_training_loop(session.model, examples, config, session.trainer.pad_id, seed)
    session.trainer.progress = False
    with session.weights.attached(seed=seed) as peft_model:
        result = session.trainer.train(peft_model, tasks, steps, seed)  # draws the same examples from the same seed
    return {"steps": steps, "ours_tokens_per_s": result.tokens / result.seconds,
            "plain_tokens_per_s": plain_tokens / plain_seconds, "same_tokens": result.tokens == plain_tokens,
            "ratio": (result.tokens / result.seconds) / (plain_tokens / plain_seconds)}


def peak_rss_above_start(work) -> int:
    """Bytes by which this process's peak resident memory rose above its resident memory at the start
    while `work()` ran (Linux: VmHWM reset through /proc/self/clear_refs)."""
    import gc

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise OSError(f"/proc/self/status has no {field}")

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    start = status("VmRSS")
    work()
    return status("VmHWM") - start


def bench_push_memory(session) -> dict:
    """Peak memory of one push of merged weights into the live engine: all merged tensors held at once
    (as arc-submit pushed before), against streamed tensor by tensor (as it pushes now)."""
    from arc_submit.model.merge import iter_merged_weights, merged_weights

    dtype, sampler = session.weights.torch_dtype, session.sampler
    with session.weights.attached(seed=1) as peft_model:
        session.weights.pushed_elsewhere()
        held = peak_rss_above_start(lambda: sampler.load_weights(merged_weights(peft_model, dtype).items()))
        start = time.perf_counter()
        streamed = peak_rss_above_start(lambda: sampler.load_weights(iter_merged_weights(peft_model, dtype)))
        push_s = time.perf_counter() - start
    parameters = sum(p.numel() for p in session.model.parameters())
    return {"parameters": parameters, "held_peak_mib": held / 2**20, "streamed_peak_mib": streamed / 2**20,
            "streamed_push_s": push_s, "ratio": held / max(streamed, 1)}


def bench_adapter_serving(session, prompts: list[list[int]], new_tokens: int, rank: int) -> dict:
    """vLLM serving each task's LoRA (sampling.adapter = "lora") against merged weights pushed into the
    live engine (the default): what preparing a task's weights costs, and generation speed."""
    import gc

    from arc_submit.model.merge import iter_merged_weights
    from arc_submit.predict.sampler import Adapter, Request, create_sampler

    with session.weights.attached(seed=1) as peft_model:
        session.weights.pushed_elsewhere()
        start = time.perf_counter()
        session.sampler.load_weights(iter_merged_weights(peft_model, session.weights.torch_dtype))
        merge_push_s = time.perf_counter() - start
        folder = Path(tempfile.mkdtemp(prefix="arc-submit-adapter-"))
        start = time.perf_counter()
        peft_model.save_pretrained(folder)
        save_s = time.perf_counter() - start
    session.sampler.close()
    gc.collect()
    start = time.perf_counter()
    sampler = create_sampler(session.config.sampling, session.resolved.base_dir, session.dtype,
                             session.config.prompt.max_seq_len, 0, session.device, lora_rank=rank)
    lora_engine_start_s = time.perf_counter() - start
    adapter = Adapter("task", 1, folder)
    requests = [Request(p, 1, 0.0, new_tokens, i, ignore_eos=True, adapter=adapter) for i, p in enumerate(prompts)]
    sampler.generate(requests[:1])  # warm-up, and the adapter's load
    start = time.perf_counter()
    sampler.generate(requests)
    served = len(prompts) * new_tokens / (time.perf_counter() - start)
    sampler.close()
    return {"merge_push_s": merge_push_s, "adapter_save_s": save_s, "lora_engine_start_s": lora_engine_start_s,
            "lora_served_tokens_per_s": served}


def bench_pipeline(config: str, settings: list[str], tasks: int, steps: int, out: str | None) -> dict:
    """A real run of `tasks` tasks in a fresh process: where its wall time goes."""
    from arc_submit.run.rundir import RunDir, work_seconds
    from arc_submit.studies.evaluate import run_in_process

    out = Path(out or tempfile.mkdtemp(prefix="arc-submit-bench-"))
    flags = ["--config", config, "--dataset", "arc-agi-1-eval", "--smallest", str(tasks), "--quiet",
             "--set", f"ttft.steps={steps}", *[x for s in settings for x in ("--set", s)]]
    start = time.perf_counter()
    summary = run_in_process(flags, out / "run")
    wall = time.perf_counter() - start
    records = list(RunDir(out / "run").records().values())
    compute = sum(work_seconds(r)[0] for r in records)
    generate = sum(work_seconds(r)[1] for r in records)
    task_wall = sum(r.timings["total_s"] for r in records)
    return {"tasks": len(records), "wall_s": wall, "task_wall_s": task_wall, "train_compute_s": compute,
            "generate_s": generate, "per_task_overhead": (task_wall - compute - generate) / task_wall,
            "run_overhead": (wall - compute - generate) / wall, "engine_starts": summary["engine_starts"],
            "startup_s": summary["timings"]}


def bench_rules(config: str, settings: list[str], tasks: int, out: str | None) -> dict:
    """A real run of the first `tasks` tasks of the "rules" dataset in a fresh process, with the config's
    own TTFT steps: the tasks solved, and each task's last training loss."""
    from arc_submit.files import read_json
    from arc_submit.run.rundir import RunDir
    from arc_submit.studies.evaluate import run_in_process

    out = Path(out or tempfile.mkdtemp(prefix="arc-submit-bench-"))
    flags = ["--config", config, "--dataset", "rules", "--limit", str(tasks), "--quiet",
             *[x for s in settings for x in ("--set", s)]]
    summary = run_in_process(flags, out / "rules")
    records = RunDir(out / "rules").records()
    per_task = read_json(out / "rules" / "metrics.json")["per_task"]
    return {"tasks": len(records), "ttft_steps": sorted({r.ttft.steps for r in records.values() if r.ttft}),
            "solved": [task_id for task_id, values in per_task.items() if values["score"] == 1.0],
            "score": summary["metrics"]["score"],
            "last_loss": {task_id: round(r.ttft.losses[-1], 4) for task_id, r in records.items() if r.ttft and r.ttft.losses}}
