"""Helper for test_e2e: greedy answers of vLLM's engine before and after pushing weights into it, or
of a fresh engine. Run as a script (vLLM's engine wants its own process):

    python tests/engines/live_engine.py --model BASE --push MERGED_DIR --out result.json
    python tests/engines/live_engine.py --model MERGED_DIR --out fresh.json
"""

from __future__ import annotations

import argparse
import json
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--push", help="a model folder whose weights are pushed into the live engine")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from pathlib import Path

    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from arc_submit.config import SamplingConfig
    from arc_submit.predict.sampler import Request, create_sampler

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    texts = ["Write the digits from 1 to 9.", "What is the opposite of up?", "1 012\n2 345\n3 678\nContinue:"]
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                             tokenize=True, return_dict=True)["input_ids"] for t in texts]
    sampler = create_sampler(SamplingConfig(kv_cache_gib=1.0), Path(args.model), "float32", 2048, 0, "cpu")
    requests = [Request(list(p), 1, 0.0, 40, i) for i, p in enumerate(prompts)]

    def answers():
        return [[c.text, c.logprob] for outputs in sampler.generate(requests) for c in outputs]

    result = {"before": answers()}
    if args.push:
        import torch
        from transformers import AutoModelForCausalLM

        from arc_submit.predict.sampler import token_logprobs

        base = load_file(str(Path(args.model) / "model.safetensors"))
        pushed = load_file(str(Path(args.push) / "model.safetensors"))
        report = sampler.load_weights(iter(pushed.items()))  # streamed, as the pipeline pushes
        result["pushed"] = answers()
        result["names_sent"], result["missing"] = len(report.names), report.missing
        probe = list(prompts[0])
        result["engine_logprobs"] = sampler.prompt_logprobs(probe)
        model = AutoModelForCausalLM.from_pretrained(args.push, dtype=torch.float32)
        result["model_logprobs"] = token_logprobs(model, probe)
        dropped = sampler.load_weights(iter([(n, t) for n, t in base.items() if "layers.3.mlp.down_proj" not in n]))
        result["missing_when_dropped"] = dropped.missing
        sampler.load_weights(iter(base.items()))
        result["restored"] = answers()
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
