"""Helper for test_dfs: one real ARC prompt, longer than one engine step, on vLLM's engine with chunked
prefill (a step of `--max-batched-tokens` cuts it in parts, as a GPU does) or whole (a step holds it). Writes
what chunking touches: the prompt's log-probabilities (they arrive in pieces), the DFS leaves (its floor
stop sees the discarded sample of every chunk as a repeated first step) and the leaves' scores from the
engine. Run as a script, once per step size (vLLM's engine wants its own process):

    python tests/engines/chunked_engines.py --max-batched-tokens 256 --out chunked.json
    python tests/engines/chunked_engines.py --max-batched-tokens 4096 --out whole.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

PROMPT_TOKENS = (1200, 2000)  # the task taken: the first of ARC-AGI-1 eval whose prompt is this long
MIN_PROB, MAX_CANDIDATES = 0.1, 4
FLOOR = -8.0  # nats: a greedy path of this model on this prompt falls below it after some steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-batched-tokens", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from transformers import AutoTokenizer

    from arc_submit.config import PromptConfig, SamplingConfig
    from arc_submit.data.tasks import load_dataset
    from arc_submit.model.load import prompt_builder
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.predict import vllm_sampler, vllm_versions
    from arc_submit.predict.dfs import search, top_k_for

    base = resolve(EMBEDDED_ALIAS).base_dir
    builder = prompt_builder(AutoTokenizer.from_pretrained(base), PromptConfig(max_seq_len=4096))
    task, example = next((task, example) for task in load_dataset("arc-agi-1-eval")
                         for example in [builder.render(task.train, task.test[0].input, task.test[0].output)]
                         if PROMPT_TOKENS[0] <= len(example.prompt_ids) <= PROMPT_TOKENS[1])
    # Where torch's generators rewind (CUDA), the sampler lets vLLM cut prompts in parts at max_num_batched_tokens;
    # on CPU it keeps every prompt whole for seeded sampling's sake. Nothing here is seeded: the CUDA rule.
    vllm_versions._generators_rewind = lambda: True
    sampler = vllm_sampler.VLLMSampler(base, "float32", 4096, SamplingConfig(
        max_batched_tokens=args.max_batched_tokens, kv_cache_gib=1.0), seed=0, device="cpu")
    scheduler = sampler.llm.llm_engine.vllm_config.scheduler_config
    prompt = list(example.prompt_ids)
    logprobs = sampler.prompt_logprobs(prompt)
    sampler.llm.reset_prefix_cache()
    answer_tokens = len(example.answer_ids) + 4
    leaves, cut = search(sampler, [prompt], MIN_PROB, MAX_CANDIDATES, [answer_tokens], set(builder.stop_token_ids),
                         allowed=builder.answer_token_ids)  # grids only: the leaves end where an answer ends
    sampler.llm.reset_prefix_cache()
    # the floor stop on its own: the same prompt twice in one call, followed to its length and cut at a floor
    paths = sampler.greedy_paths([prompt, prompt], [-math.inf, FLOOR], [answer_tokens] * 2,
                                 set(builder.stop_token_ids), top_k_for(MIN_PROB), allowed=builder.answer_token_ids)
    sampler.llm.reset_prefix_cache()
    answers = [list(leaf.tokens) for leaf in leaves[0]] + [list(example.answer_ids)]
    scores = sampler.score_views([(prompt, answers)])[0]
    Path(args.out).write_text(json.dumps({
        "task": task.task_id, "prompt_tokens": len(prompt), "max_num_batched_tokens": scheduler.max_num_batched_tokens,
        "chunked_prefill": bool(getattr(scheduler, "chunked_prefill_enabled", scheduler.enable_chunked_prefill)),
        "logprobs": logprobs, "cut": cut, "leaves": [[list(leaf.tokens), leaf.logprob] for leaf in leaves[0]],
        "scores": scores, "paths": [[path.tokens, path.logprobs, path.finished] for path in paths]}))
    sampler.close()


if __name__ == "__main__":
    main()
