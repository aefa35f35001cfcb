"""Helper for test_scoring: answers scored on vLLM's engine right after sampling on the same prompts (their
blocks in the prefix cache, the greedy answers' too), two prompts' answers in one call, beside the same
answers scored by a full forward of the transformers model; and, on the same engine (one start serves
both), seeded sampling at a temperature of more prompts than one engine step holds, twice. Writes them as
JSON. Run as a script (vLLM's engine wants its own process):

    python tests/engines/cached_scores_engine.py --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

PROMPT, GREEDY = 300, 260  # tokens: the greedy answer's cached blocks reach past the prompt at any block size to 256
OTHER = 333  # a second view's prompt, of another length


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import torch
    from transformers import AutoModelForCausalLM
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from arc_submit.config import SamplingConfig
    from arc_submit.predict.sampler import Request, create_sampler
    from arc_submit.run.weights import scores_on_model
    from tests.helpers.tiny_model import build_winner_model

    out = Path(args.out)
    folder = build_winner_model(out.parent / "model", "nvarc")  # a head size vLLM's CPU attention takes
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    vocabulary = model.config.vocab_size
    rng = random.Random(0)
    prompts = [[rng.randrange(vocabulary) for _ in range(length)] for length in (PROMPT, OTHER)]
    # a step of 256 tokens would cut the 300-token prompt in two, and seeded sampling there raised on CPU
    sampler = create_sampler(SamplingConfig(kv_cache_gib=1.0, max_batched_tokens=256), folder, "float32", 2048, 0,
                             "cpu")
    views = []  # (prompt, answers): on the greedy path (all or part of it cached) and off it (none of it)
    for sampled, prompt in zip(sampler.llm.generate([TokensPrompt(prompt_token_ids=prompt) for prompt in prompts],
                                                    SamplingParams(temperature=0.0, max_tokens=GREEDY,
                                                                   ignore_eos=True), use_tqdm=False), prompts):
        greedy = list(sampled.outputs[0].token_ids)
        leave = (greedy[0] + 1) % vocabulary  # leaves the greedy path at once: none of its tokens cached
        views.append((prompt, [greedy, greedy[:150]] + [[leave] + [rng.randrange(vocabulary) for _ in range(n - 1)]
                                                        for n in (50, 180)]))
    engine = [value for scores in sampler.score_views(views) for value in scores]
    # eight prompts, nothing of them cached, two samples each: more than one step of vLLM 0.11 holds
    fresh = [[random.Random(seed).randrange(vocabulary) for _ in range(PROMPT)] for seed in range(1, 9)]
    runs = [sampler.generate([Request(ids, 2, 0.7, 8, seed, ignore_eos=True) for seed, ids in enumerate(fresh)])
            for _ in range(2)]
    seeded = [[[c.text for c in outputs] for outputs in completions] for completions in runs]

    def full_forward(prompt: list[int], answer: list[int]) -> float:
        with torch.no_grad():
            logits = model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1: -1].float()
        return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(answer)[:, None]).sum())

    reference = [full_forward(prompt, answer) for prompt, answers in views for answer in answers]
    # a sample's log-probability at a temperature: of the raw logits, its tokens' log-likelihood (what scoring
    # reads in its place)
    sampled = [[c.logprob, full_forward(ids, list(c.token_ids))]
               for ids, outputs in zip(fresh, runs[0]) for c in outputs]
    out.write_text(json.dumps({
        "engine": engine, "reference": reference, "scores_from_cache": sampler.scores_from_cache,
        "seeded": seeded, "sampled": sampled, "seeded_call_tokens": sampler.seeded_call_tokens,
        "reads_cache_param": all(hasattr(SamplingParams(), name) for name in ("skip_reading_prefix_cache",
                                                                             "logprob_token_ids")),
        "auto_on_model": scores_on_model("auto", "vllm", "cpu", sampler.scores_from_cache),
        "completed": sampler.completed, "rescored": sampler.rescored, "scored_from_cache": sampler.scored_from_cache}))


if __name__ == "__main__":
    main()
