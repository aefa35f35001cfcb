"""Helper for test_e2e: DFS over the embedded model with the vLLM engine and with transformers, on the
same prompts; prints the leaves of both as JSON. Run as a script (vLLM's engine wants its own process):

    python tests/dfs_engines.py --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

MIN_PROB = 0.04  # the lowest sampling.min_prob allows: the most branches (vLLM reports at most 32 tokens a step)

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from transformers import AutoTokenizer

    from arc_submit.config import SamplingConfig
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.predict.backends import create_sampler
    from arc_submit.predict.dfs import search

    base = resolve(EMBEDDED_ALIAS).base_dir
    tokenizer = AutoTokenizer.from_pretrained(base)
    texts = ["Answer with one word: the opposite of up?", "Reply yes or no: is the sky blue?", "Say one digit.",
             "Name a colour. One word."]
    prompts = [list(tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True)["input_ids"]) for t in texts]
    stop = {tokenizer.convert_tokens_to_ids("<|im_end|>")}
    result = {}
    for backend in ("vllm", "transformers"):
        sampler = create_sampler(SamplingConfig(backend=backend, kv_cache_gib=1.0), base, "float32", 2048, 0, "cpu")
        continued = []  # how many sequences each round of the search continued: the shape of the tree it walked
        greedy_paths = sampler.greedy_paths
        sampler.greedy_paths = lambda sequences, *rest, **named: (continued.append(len(sequences)),
                                                                  greedy_paths(sequences, *rest, **named))[1]
        start = time.perf_counter()
        leaves, cut = search(sampler, prompts, MIN_PROB, 8, [48] * len(prompts), stop)
        result[backend] = {"seconds": time.perf_counter() - start, "cut": cut, "continued": continued,
                           "leaves": [[[list(leaf.tokens), leaf.logprob] for leaf in found] for found in leaves]}
        sampler.close()
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
