"""A vLLM logits processor that ends a DFS branch the step its log-probability falls below its floor.

vLLM continues a greedy request to its end; a DFS branch is worth nothing past the step where it falls
below `min_prob`, and without this every branch would be decoded to the end of its answer. A request asks
for the cut through its `SamplingParams.extra_args`:

    extra_args={FLOOR: -2.3, STOP: 2, ALLOWED: [3, 4, ...] or None}

Each step the processor takes the step's log-probabilities over the raw logits (as vLLM reports them), the
greedy token among `ALLOWED` (the answer-token mask, applied here rather than by vLLM, whose mask comes
before any logits processor and would change the log-probabilities), and adds the token's log-probability
to the branch's sum; once the sum is below the floor by more than `MARGIN`, the step's token is forced
to `STOP`. The caller (`sampler.path_from_steps`) still cuts the path exactly where the sum first fell
below the floor, which is at or before the forced step (a forced stop is never taken for a real end:
the margin keeps the processor's float sums from deciding before the caller's). Holds only this module's
state: vLLM imports it at engine start (the engine runs in this process).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

FLOOR, STOP, ALLOWED = "arc_submit_floor", "arc_submit_stop", "arc_submit_allowed"
MARGIN = 1e-3  # nats: far above float32 rounding of a few hundred summed log-probabilities


@dataclass
class _Branch:
    floor: float  # the log-probability the branch must stay above
    stop: int
    allowed: list[int] | None
    output_ids: list[int]  # vLLM's running list of the request's generated tokens
    sums: list[float] = field(default_factory=lambda: [0.0])  # sums[k]: log-probability of the first k tokens
    mask: torch.Tensor | None = None  # `allowed` as a mask over the vocabulary, once the width is known


class FloorStop(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
        self.branches: dict[int, _Branch] = {}
        self.masks: dict[tuple[int, ...], torch.Tensor] = {}  # one per distinct `allowed`, shared by branches

    def is_argmax_invariant(self) -> bool:
        return False  # it forces the stop token

    @staticmethod
    def _branch(params, prompt_ids, output_ids) -> _Branch | None:
        extra = params.extra_args or {}
        if FLOOR not in extra:
            return None
        return _Branch(float(extra[FLOOR]), int(extra[STOP]), extra.get(ALLOWED), output_ids)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.branches, batch_update, self._branch)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.branches:
            return logits
        rows = sorted(self.branches)
        logprobs = logits[rows].log_softmax(dim=-1, dtype=torch.float32)
        masked = logprobs.clone()
        for position, row in enumerate(rows):
            branch = self.branches[row]
            if branch.allowed is not None:
                if branch.mask is None:
                    branch.mask = self._mask(branch.allowed, logits.shape[-1], logits.device)
                masked[position].masked_fill_(branch.mask, float("-inf"))
                logits[row].masked_fill_(branch.mask, float("-inf"))
        chosen = masked.argmax(dim=-1, keepdim=True)
        chosen_logprobs = logprobs.gather(-1, chosen).squeeze(-1).tolist()
        for row, logprob in zip(rows, chosen_logprobs):
            branch = self.branches[row]
            step = len(branch.output_ids)  # a step repeated (a discarded chunked-prefill sample) is overwritten
            if step >= len(branch.sums):  # a step this processor did not see: its sum is unknown, never cut
                branch.floor = float("-inf")
                continue
            del branch.sums[step + 1:]
            branch.sums.append(branch.sums[step] + logprob)
            if branch.sums[step + 1] < branch.floor - MARGIN:
                logits[row] = float("-inf")
                logits[row, branch.stop] = 0.0
        return logits

    def _mask(self, allowed: list[int], width: int, device: torch.device) -> torch.Tensor:
        """True where a token is *not* allowed."""
        key = tuple(allowed)
        if key not in self.masks:
            mask = torch.ones(width, dtype=torch.bool, device=device)
            mask[list(key)] = False
            self.masks[key] = mask
        return self.masks[key]
