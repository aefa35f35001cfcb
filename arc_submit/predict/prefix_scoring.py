"""Answers scored on a shared prompt with a transformers model: the prompt is prefilled once, its KV cache
repeated over a batch of answers (right-padded, positions continuing from the prompt), and every answer's
log-likelihood read from one forward. The transformers backend scores this way, and so does a run on vLLM
that scores on the model in memory (`voting.scorer`), through a ModelScorer.

    logprobs = answer_logprobs(model, prompt_ids, [answer_ids, ...])   # one float per answer
    logprobs = ModelScorer(peft_model).score(prompt_ids, [answer_ids, ...])
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

LOGITS_PER_CHUNK = 1 << 26  # answers go through in chunks whose logits (rows x longest x vocabulary) stay below this


def answer_chunks(lengths: list[int], vocabulary: int, budget: int = LOGITS_PER_CHUNK) -> list[range]:
    """Consecutive ranges of answers, each as many as fit the logits budget at its longest answer (one at least)."""
    chunks, start = [], 0
    while start < len(lengths):
        end, longest = start + 1, lengths[start]
        while end < len(lengths) and (end + 1 - start) * max(longest, lengths[end]) * vocabulary <= budget:
            longest = max(longest, lengths[end])
            end += 1
        chunks.append(range(start, end))
        start = end
    return chunks


def answer_logprobs(model, prompt_ids: list[int], answers: list[list[int]],
                    budget: int = LOGITS_PER_CHUNK) -> list[float]:
    """The log-likelihood of each answer (all its tokens, none empty) as the continuation of the prompt,
    the prompt's KV cache computed once for all of them."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True, logits_to_keep=1)
        prompt_cache, last = out.past_key_values, out.logits[0, -1].float()
        scores = []
        for chunk in answer_chunks([len(answer) for answer in answers], last.shape[-1], budget):
            cache = copy.deepcopy(prompt_cache)  # the prompt's own cache stays whole for the next chunk
            cache.batch_repeat_interleave(len(chunk))
            scores += _chunk_logprobs(model, cache, last, len(prompt_ids), [answers[i] for i in chunk])
    return scores


def _chunk_logprobs(model, cache, last, prompt_length: int, answers: list[list[int]]) -> list[float]:
    """One forward of right-padded answers on a cache holding the prompt once per answer; each token's
    log-probability is its logit less the log-sum-exp of its row (the first token's row: the prompt's last)."""
    import torch

    device = last.device
    rows, width = len(answers), max(len(answer) for answer in answers)
    ids = torch.zeros((rows, width), dtype=torch.long, device=device)
    mask = torch.zeros((rows, prompt_length + width), dtype=torch.long, device=device)
    mask[:, :prompt_length] = 1
    for row, answer in enumerate(answers):
        ids[row, : len(answer)] = torch.tensor(answer, device=device)
        mask[row, prompt_length: prompt_length + len(answer)] = 1
    positions = torch.arange(prompt_length, prompt_length + width, device=device).expand(rows, width)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=True).logits[:, :-1].float()
    logits = torch.cat([last.expand(rows, 1, -1), logits], dim=1)  # row j predicts answer token j
    chosen = logits.gather(2, ids[:, :, None])[:, :, 0] - torch.logsumexp(logits, dim=-1)
    real = mask[:, prompt_length:].bool()
    return chosen.masked_fill(~real, 0.0).sum(dim=1).tolist()


@dataclass
class ModelScorer:
    """Scores answers like a sampler's `score`, on a transformers model (with whatever adapter is attached to
    it): the caller makes sure it holds the weights the candidates were sampled with."""

    model: object

    def __post_init__(self):
        self.model.eval()  # no LoRA dropout

    def score(self, prompt_ids: list[int], answers: list[list[int]], adapter=None) -> list[float]:
        """`adapter` (the engine's LoRA) is not read: the model carries its weights."""
        return answer_logprobs(self.model, prompt_ids, answers)
