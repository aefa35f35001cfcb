"""Benchmarks measured side by side in one run; ratios, not absolute times, are the result.

    python -m arc_submit bench --config cpu            # ~10 minutes on 2 cores; last line is JSON

- sampling: our sampler (the config's backend, vLLM by default) against plain transformers `generate`
  on the same model, prompts and number of new tokens (prefill included), as new tokens per second;
- ttft: our trainer against a plain PyTorch + peft loop on the same examples, as trained tokens/s;
- adapter serving (vLLM only): sampling with the LoRA served by vLLM against the merged weights pushed
  into the live engine, and what a push costs;
- pipeline: a run of a few tasks: per-task overhead (wall time outside optimizer steps and token
  generation, as a share of task time), the same for the whole run, and engine starts.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from arc_submit.config import Config


def setup_stack(config: Config):
    from arc_submit.data.tasks import load_dataset, smallest
    from arc_submit.run.pipeline import open_stack

    stack = open_stack(config, progress=False)
    return stack, smallest(load_dataset("arc-agi-1-eval"), 4)


def sample_prompts(stack, tasks, augmentations: int) -> list[list[int]]:
    from arc_submit.predict.candidates import max_new_tokens, prompt_jobs

    sampling = dataclasses.replace(stack.config.sampling, augmentations=augmentations)
    prompts = []
    for task in tasks:
        jobs, _ = prompt_jobs(task, stack.builder, sampling, 0, max_new_tokens(task, stack.builder, sampling))
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


def bench_sampling(stack, prompts: list[list[int]], new_tokens: int) -> dict:
    from arc_submit.predict.backends import Request

    requests = [Request(p, 1, 0.0, new_tokens, i, ignore_eos=True) for i, p in enumerate(prompts)]
    stack.sampler.generate(requests[:1])  # warm-up, not timed
    start = time.perf_counter()
    stack.sampler.generate(requests)
    ours = time.perf_counter() - start
    pad = stack.builder.tokenizer.pad_token_id
    pad = pad if pad is not None else stack.builder.tokenizer.eos_token_id
    transformers_generate(stack.model, prompts[:1], 4, pad)  # warm-up
    baseline = transformers_generate(stack.model, prompts, new_tokens, pad)
    tokens = len(prompts) * new_tokens
    return {"prompts": len(prompts), "new_tokens_each": new_tokens,
            "prompt_tokens_mean": float(np.mean([len(p) for p in prompts])),
            "ours_tokens_per_s": tokens / ours, "transformers_tokens_per_s": tokens / baseline,
            "ratio": baseline / ours}


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


def bench_ttft(stack, tasks, steps: int, seed: int = 0) -> dict:
    from arc_submit.model.training import attach_adapter, detach_adapter, example_stream

    config = stack.config.ttft
    stream = example_stream(tasks, stack.builder, np.random.default_rng(seed), config.augment.draw_options())
    examples = [next(stream) for _ in range(steps)]
    plain_training_loop(stack.model, examples[:1], config, stack.trainer.pad_id, seed)  # warm-up
    plain_tokens, plain_seconds = plain_training_loop(stack.model, examples, config, stack.trainer.pad_id, seed)
    peft_model = attach_adapter(stack.model, config, seed=seed)
    stack.trainer.progress = False
    result = stack.trainer.train(peft_model, tasks, steps, seed)  # draws the same examples from the same seed
    stack.model = detach_adapter(peft_model)
    return {"steps": steps, "ours_tokens_per_s": result.tokens / result.seconds,
            "plain_tokens_per_s": plain_tokens / plain_seconds, "same_tokens": result.tokens == plain_tokens,
            "ratio": (result.tokens / result.seconds) / (plain_tokens / plain_seconds)}


def bench_adapter_serving(stack, prompts: list[list[int]], new_tokens: int, rank: int) -> dict:
    """vLLM serving the LoRA (enable_lora) against merged weights in the live engine."""
    import gc

    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    from arc_submit.model.merge import merged_weights
    from arc_submit.model.training import attach_adapter, detach_adapter

    peft_model = attach_adapter(stack.model, stack.config.ttft, seed=1)
    start = time.perf_counter()
    weights = merged_weights(peft_model, stack.torch_dtype)
    merge_s = time.perf_counter() - start
    start = time.perf_counter()
    stack.sampler.load_weights(weights)
    push_s = time.perf_counter() - start
    folder = tempfile.mkdtemp(prefix="arc-submit-adapter-")
    peft_model.save_pretrained(folder)
    stack.model = detach_adapter(peft_model)
    stack.sampler.close()
    gc.collect()
    llm = LLM(model=str(stack.resolved.base_dir), dtype=stack.dtype, max_model_len=stack.config.prompt.max_seq_len,
              enforce_eager=stack.config.sampling.enforce_eager, seed=0, enable_lora=True, max_lora_rank=rank,
              max_loras=1)
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    batch = [TokensPrompt(prompt_token_ids=p) for p in prompts]
    adapter = LoRARequest("task", 1, folder)
    llm.generate(batch[:1], params, lora_request=adapter, use_tqdm=False)  # warm-up
    start = time.perf_counter()
    llm.generate(batch, params, lora_request=adapter, use_tqdm=False)
    served = len(prompts) * new_tokens / (time.perf_counter() - start)
    return {"merge_s": merge_s, "push_s": push_s, "lora_served_tokens_per_s": served}



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
