"""Helper for test_e2e and test_winner_models: DFS with the vLLM engine and with transformers, on the
same prompts; prints the leaves of both as JSON. Run as a script (vLLM's engine wants its own process):

    python tests/engines/dfs_engines.py --out result.json                  # the embedded model, chat prompts
    python tests/engines/dfs_engines.py --out result.json --winner nvarc   # a tiny model of NVARC's kind, its format,
                                                                   # searched with and without the answer-token mask
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
    parser.add_argument("--winner", choices=["nvarc", "architects"])
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if args.winner:
        Path(args.out).write_text(json.dumps(winner_search(args.winner, Path(args.out).parent)))
        return
    from transformers import AutoTokenizer

    from arc_submit.config import SamplingConfig
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.predict.dfs import search
    from arc_submit.predict.sampler import create_sampler

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
        # vLLM twice: branches ended at their floor (the default), then every branch decoded to its end
        for name, cuts in ((backend, True), ("vllm uncut", False))[:2 if backend == "vllm" else 1]:
            continued.clear()
            if backend == "vllm":
                sampler.cuts_branches, sampler.branch_tokens = cuts, 0
                sampler.llm.reset_prefix_cache()
            start = time.perf_counter()
            leaves, cut = search(sampler, prompts, MIN_PROB, 8, [48] * len(prompts), stop)
            result[name] = {"seconds": time.perf_counter() - start, "cut": cut, "continued": list(continued),
                            "branch_tokens": getattr(sampler, "branch_tokens", None),
                            "leaves": [[[list(leaf.tokens), leaf.logprob] for leaf in found] for found in leaves]}
        sampler.close()
    Path(args.out).write_text(json.dumps(result))


def winner_search(kind: str, folder: Path) -> dict:
    """Leaves of a DFS over a tiny model of the kind, in its format, on both engines, with the answer-token
    mask (`masked`) and without (`unmasked`); half the tokens end a leaf, so the tree is wide."""
    from transformers import AutoTokenizer

    from arc_submit.config import PromptConfig, SamplingConfig
    from arc_submit.data.tasks import Pair
    from arc_submit.model.load import prompt_builder
    from arc_submit.predict.dfs import search
    from arc_submit.predict.sampler import create_sampler
    from tests.helpers.tiny_model import build_winner_model

    model = build_winner_model(folder / kind, kind)
    builder = prompt_builder(AutoTokenizer.from_pretrained(model), PromptConfig(format=kind, max_seq_len=2048))
    prompts = [builder.render([Pair([[1, 2], [3, 4]], [[4, 3], [2, 1]])], grid).prompt_ids for grid in ([[1, 2], [3, 4]], [[5]])]
    ends = set(builder.stop_token_ids) | set(range(0, len(builder.tokenizer), 2))
    result = {"allowed": sorted(builder.answer_token_ids)}
    for backend in ("vllm", "transformers"):
        sampler = create_sampler(SamplingConfig(backend=backend, kv_cache_gib=1.0), model, "float32", 2048, 0, "cpu")
        for name, allowed in (("unmasked", None), ("masked", builder.answer_token_ids)):
            leaves, cut = search(sampler, prompts, MIN_PROB, 1000, [5] * len(prompts), ends, allowed=allowed)
            result[f"{backend} {name}"] = [[[list(leaf.tokens), leaf.logprob, leaf.below] for leaf in found]
                                           for found in leaves]
        sampler.close()
    return result


if __name__ == "__main__":
    main()
