"""Scoring benchmark: seconds to score C candidates under V views of one ARC-AGI-1 eval task with the embedded
model (float32, CPU), on each backend, one process, so that the ratios compare like with like:

    vllm      VLLMSampler.score as on vLLM 0.11: one request per (prompt + answer), every token computed
    vllm-cache VLLMSampler.score reading the prefix cache (vLLM 0.32): the view's prompt computed once, by
              the first of its answers' requests (the cache is emptied before each repeat: no sampling put
              the prompts there, as a run's sampling does)
    tf-old    the transformers backend before shared-prefix batching: one forward per answer, cache cropped
    tf-batch  the transformers backend before prefix trees (git 82363df): the prompt prefilled once, its cache
              repeated over the answers, all answers (right-padded) in one batched forward
    tf-new    TransformersSampler.score: the prompt prefilled once, the answers' prefix tree in one forward
              (each distinct prefix computed once)

    .venv/bin/python benchmarks/scoring.py --views 8 --candidates 10 --out runs/bench-scoring.json

Prints one line per backend (best of --repeats, after a warm-up) and a JSON object (seconds, ratios to
`vllm`, and the largest difference of each backend's scores from tf-new's) as the last line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def crop_one_by_one(model, prompt_ids: list[int], answers: list[list[int]]) -> list[float]:
    """The transformers backend's scoring before shared-prefix batching (git 03ce859), kept here to time it."""
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        cache, first = out.past_key_values, out.logits[0, -1:].float()
        scores = []
        for answer in answers:
            logits = model(input_ids=torch.tensor([answer]), past_key_values=cache, use_cache=True).logits[0, :-1].float()
            cache.crop(len(prompt_ids))
            logprobs = torch.log_softmax(torch.cat([first, logits]), dim=-1)
            scores.append(float(logprobs.gather(1, torch.tensor(answer)[:, None]).sum()))
    return scores


def batched_on_repeated_cache(model, prompt_ids: list[int], answers: list[list[int]]) -> list[float]:
    """The transformers backend's scoring before prefix trees (git 82363df, one chunk), kept here to time it."""
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
        cache, last = out.past_key_values, out.logits[0, -1].float()
        cache.batch_repeat_interleave(len(answers))
        rows, width, length = len(answers), max(len(answer) for answer in answers), len(prompt_ids)
        ids = torch.zeros((rows, width), dtype=torch.long)
        mask = torch.zeros((rows, length + width), dtype=torch.long)
        mask[:, :length] = 1
        for row, answer in enumerate(answers):
            ids[row, : len(answer)] = torch.tensor(answer)
            mask[row, length: length + len(answer)] = 1
        positions = torch.arange(length, length + width).expand(rows, width)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True).logits[:, :-1].float()
        logits = torch.cat([last.expand(rows, 1, -1), logits], dim=1)
        chosen = logits.gather(2, ids[:, :, None])[:, :, 0] - torch.logsumexp(logits, dim=-1)
        return chosen.masked_fill(~mask[:, length:].bool(), 0.0).sum(dim=1).tolist()


class Scorer:
    """A named score(prompt_ids, answers, adapter) for view_logprobs."""

    def __init__(self, score):
        self.score = score


def candidate_grids(truth: list[list[int]], count: int, seed: int) -> list[list[list[int]]]:
    """The true output and `count - 1` distinct copies of it with a few cells changed (sampled candidates look so)."""
    import numpy as np

    rng, grids = np.random.default_rng(seed), [truth]
    while len(grids) < count:
        grid = np.array(truth)
        for _ in range(int(rng.integers(1, 4))):
            grid[rng.integers(grid.shape[0]), rng.integers(grid.shape[1])] = rng.integers(10)
        if grid.tolist() not in grids:
            grids.append(grid.tolist())
    return grids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--task-rank", type=int, default=40, help="the Nth smallest ARC-AGI-1 eval task")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backends", default="vllm,vllm-cache,tf-old,tf-batch,tf-new")
    parser.add_argument("--block-size", type=int, default=0,
                        help="the engine's sampling.block_size (0: auto, 32 on vLLM 0.32's CPU build)")
    parser.add_argument("--out", default="runs/bench-scoring.json")
    args = parser.parse_args()

    import dataclasses

    import torch

    from arc_submit.config import load_config
    from arc_submit.data.tasks import load_dataset
    from arc_submit.model.load import prompt_builder
    from arc_submit.model.resolve import resolve
    from arc_submit.predict.candidates import answer_reserve, prompt_jobs
    from arc_submit.predict.prefix_scoring import prefix_tree
    from arc_submit.predict.sampler import cache_reading, create_sampler
    from arc_submit.predict.scoring import view_logprobs
    from arc_submit.predict.transformers_sampler import TransformersSampler

    config = load_config("cpu", [], **{"run.seed": 0})
    sampling = dataclasses.replace(config.sampling, augmentations=args.views, block_size=args.block_size)
    task = sorted(load_dataset("arc-agi-1-eval"), key=lambda t: (t.cells(), t.task_id))[args.task_rank]
    model_dir = resolve(config.model.name).base_dir
    transformers = TransformersSampler(model_dir, "float32", config.prompt.max_seq_len, sampling, 0, "cpu")
    builder = prompt_builder(transformers.tokenizer, config.prompt)
    jobs, _ = prompt_jobs(task, builder, sampling, 0, answer_reserve(task, builder, sampling))
    views = [(job.augmentation, job.prompt_ids) for job in jobs if job.test_index == 0][: args.views]
    grids = candidate_grids(task.test[0].output, args.candidates, 0)
    scorers = {"tf-new": transformers,
               "tf-old": Scorer(lambda prompt, answers, adapter=None: crop_one_by_one(transformers.model, prompt, answers)),
               "tf-batch": Scorer(lambda prompt, answers, adapter=None: batched_on_repeated_cache(
                   transformers.model, prompt, answers))}
    if "vllm" in args.backends:
        engine = create_sampler(dataclasses.replace(sampling, backend="vllm"), model_dir, "float32",
                                config.prompt.max_seq_len, 0, "cpu")
        scorers["vllm"] = scorers["vllm-cache"] = engine
    trees = [prefix_tree(sorted(builder.written_ids(view.apply_grid(grid)) for grid in grids)) for view, _ in views]
    result = {"task": task.task_id, "views": len(views), "block_size": args.block_size, "candidates": len(grids),
              "threads": torch.get_num_threads(), "prompt_tokens": [len(prompt) for _, prompt in views],
              "answer_tokens": [len(builder.written_ids(grid)) for grid in grids],  # as scoring reads them
              "tree_tokens": [len(tree.tokens) for tree in trees],
              "seconds": {}, "max_difference": {}}
    scores = {}
    for name in args.backends.split(","):
        with cache_reading(scorers[name], name != "vllm"):
            view_logprobs(scorers[name], builder, views[:1], grids[:2])  # warm-up
            seconds = []
            for _ in range(args.repeats):
                if name.startswith("vllm"):
                    engine.llm.reset_prefix_cache()
                start = time.perf_counter()
                scores[name] = view_logprobs(scorers[name], builder, views, grids)
                seconds.append(time.perf_counter() - start)
        result["seconds"][name] = round(min(seconds), 3)
        print(f"{name}: {min(seconds):.2f} s for {len(views)} views x {len(grids)} candidates", flush=True)
    reference = scores.get("tf-new")
    for name, found in scores.items():
        if reference is not None:
            result["max_difference"][name] = max(abs(a - b) for key in found for a, b in zip(found[key], reference[key]))
    if "vllm" in result["seconds"]:
        result["ratio_to_vllm"] = {name: round(s / result["seconds"]["vllm"], 3) for name, s in result["seconds"].items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
