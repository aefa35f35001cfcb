"""The transformers sampler: plain transformers `generate` on a separate copy of the model that holds the
merged weights (copied into it tensor by tensor), greedy DFS paths with one KV cache per batch, and answers
scored on a shared prompt (prefix_scoring). No LoRA adapters are served: the weights it holds are the ones used.

    sampler = TransformersSampler(model_dir, "float32", 8192, config.sampling, seed=0, device="cpu")
    completions = sampler.generate([Request(prompt_ids, n=1, temperature=0.0, max_new_tokens=200, seed=1)])
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from arc_submit.config import SamplingConfig
from arc_submit.predict.dfs import Path as SearchPath
from arc_submit.predict.prefix_scoring import answer_logprobs
from arc_submit.predict.sampler import (Adapter, Completion, PushReport, Request, Sampler, path_from_steps,
                                        token_logprobs)


class TransformersSampler(Sampler):
    """Plain transformers `generate` on a separate copy of the model that holds the merged weights."""

    def __init__(self, model_dir: Path, dtype: str, max_seq_len: int, config: SamplingConfig, seed: int, device: str,
                 lora_rank: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        self.device = device
        self.engine_starts = 1

    def load_weights(self, weights: Iterable[tuple]) -> PushReport:
        """Copy each tensor into the parameter or buffer of the same name, one at a time."""
        import torch

        targets = dict(self.model.state_dict(keep_vars=True))
        report = PushReport()
        with torch.no_grad():
            for name, tensor in weights:
                if name not in targets:
                    raise KeyError(f"weight push: the model has no parameter {name!r}")
                targets[name].copy_(tensor)
                report.names.append(name)
        report.missing = sorted(set(targets) - set(report.names))
        return report

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        _refuse_adapters(r.adapter for r in requests)
        return [self._generate_one(request) for request in requests]

    def _stop_ids(self, request: Request) -> list[int]:
        config = self.model.generation_config
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        return [token for token in dict.fromkeys([*eos, *request.stop_token_ids]) if token is not None]

    def _generate_one(self, request: Request) -> list[Completion]:
        import torch

        torch.manual_seed(request.seed)
        ids = torch.tensor([request.prompt_ids], device=self.device)
        sample = request.temperature > 0
        stops = self._stop_ids(request)
        pad = self.model.generation_config.pad_token_id
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=sample, temperature=request.temperature if sample
                else None, top_p=None, top_k=None, max_new_tokens=request.max_new_tokens,
                min_new_tokens=request.max_new_tokens if request.ignore_eos else None, eos_token_id=stops,
                num_return_sequences=request.n, output_logits=True, return_dict_in_generate=True,
                pad_token_id=pad if pad is not None else stops[0],
            )
        # of the raw logits, before the temperature (as vLLM's raw_logprobs): the answer's own log-likelihood
        scores = self.model.compute_transition_scores(out.sequences, out.logits, normalize_logits=True)
        completions = []
        for row, sequence in enumerate(out.sequences[:, ids.shape[1]:].tolist()):
            length = None if request.ignore_eos else next((i + 1 for i, t in enumerate(sequence) if t in stops), None)
            kept = sequence[: length or len(sequence)]
            logprob = float(scores[row, : len(kept)].sum())
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            completions.append(Completion(text, len(kept), logprob, "stop" if length else "length", tuple(kept)))
        return completions

    def prompt_logprobs(self, prompt_ids: list[int], adapter: Adapter | None = None) -> list[float]:
        return token_logprobs(self.model, prompt_ids)

    def greedy_paths(self, sequences: list[list[int]], floors: list[float], max_new_tokens: list[int],
                     stop_ids: set[int], top_k: int, adapter: Adapter | None = None,
                     allowed: frozenset[int] | None = None, batch: int = 8) -> list[SearchPath]:
        """Batches of sequences (left-padded) continued token by token with one KV cache, each stopping at
        a stop token, its length, or where its log-probability falls below its floor; other tokens than
        `allowed` are masked after the log-softmax (their probability is not shared out)."""
        paths = []
        for start in range(0, len(sequences), batch):
            end = start + batch
            paths += self._greedy_batch(sequences[start:end], floors[start:end], max_new_tokens[start:end], stop_ids,
                                        top_k, allowed)
        return paths

    def _greedy_batch(self, sequences, floors, max_new_tokens, stop_ids, top_k, allowed) -> list[SearchPath]:
        import torch

        masked = None
        if allowed is not None:
            vocabulary = self.model.get_output_embeddings().weight.shape[0]
            masked = torch.ones(vocabulary, dtype=torch.bool, device=self.device)
            masked[sorted(allowed)] = False

        rows, width = len(sequences), max(len(s) for s in sequences)
        ids = torch.zeros((rows, width), dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, width - len(sequence):] = torch.tensor(sequence)
            mask[row, width - len(sequence):] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        steps: list[list] = [[] for _ in sequences]
        spent = [0.0] * rows
        active = [limit > 0 for limit in max_new_tokens]
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            while any(active):
                logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
                if masked is not None:
                    logprobs[:, masked[: logprobs.shape[-1]]] = -math.inf
                values, indices = logprobs.topk(min(top_k, logprobs.shape[-1]), dim=-1)
                values, indices = values.tolist(), indices.tolist()
                for row in range(rows):
                    if active[row]:
                        steps[row].append((indices[row][0], dict(zip(indices[row], values[row]))))
                        spent[row] += values[row][0]
                        active[row] = (spent[row] >= floors[row] and indices[row][0] not in stop_ids
                                       and len(steps[row]) < max_new_tokens[row])
                if not any(active):
                    break
                chosen = torch.tensor([[row_indices[0]] for row_indices in indices], device=self.device)
                mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=self.device)], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=chosen, attention_mask=mask, position_ids=positions,
                                 past_key_values=out.past_key_values, use_cache=True)
        return [path_from_steps(row_steps, floor, stop_ids) for row_steps, floor in zip(steps, floors)]

    def score(self, prompt_ids: list[int], answers: list[list[int]], adapter: Adapter | None = None) -> list[float]:
        """The prompt prefilled once and its KV cache shared by the answers, batched (see prefix_scoring)."""
        _refuse_adapters([adapter])
        return answer_logprobs(self.model, prompt_ids, answers)


def _refuse_adapters(adapters: Iterable) -> None:
    """The transformers backend serves the weights it holds; a request for a LoRA adapter is refused."""
    if any(adapter is not None for adapter in adapters):
        raise ValueError("the transformers backend serves no LoRA adapters; use sampling.adapter = 'merged'")
