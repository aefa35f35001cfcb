"""The live stack of a run: tokenizer, trainable model, trainer and sampler, loaded and started once and
kept for every task. It joins model/ (training) and predict/ (sampling), so it sits above both.

    stack = open_stack(config, progress=True)
    stack.sampler.load_weights(stack.start_weights())
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from arc_submit.config import Config
from arc_submit.data.encoders import create as create_encoder
from arc_submit.data.prompts import PromptBuilder
from arc_submit.model.load import load_model, resolve_dtype
from arc_submit.model.resolve import ResolvedModel, resolve, set_offline
from arc_submit.model.training import Trainer, attach_adapter, check_backend, detach_adapter
from arc_submit.predict.backends import Sampler, create_sampler


@dataclass
class Stack:
    """The heavy state kept for the whole run: tokenizer, training model, live sampler."""

    config: Config
    resolved: ResolvedModel
    model: object
    sampler: Sampler
    trainer: Trainer
    builder: PromptBuilder
    device: str
    dtype: str
    engine_holds: str = "start"  # "start" (the model as given) or the task id whose weights are loaded
    shared_weights: dict | None = None  # scope "all": the weights every task samples with
    timings: dict = field(default_factory=dict)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def start_weights(self) -> dict:
        """The weights of the model as given: base, or base + the adapter it came with."""
        from arc_submit.model.merge import base_weights, merged_weights

        if self.shared_weights is not None:
            return self.shared_weights
        if self.resolved.adapter_dir is None:
            return base_weights(self.model, self.torch_dtype)
        peft_model = attach_adapter(self.model, self.config.ttft, self.resolved.adapter_dir)
        try:
            return merged_weights(peft_model, self.torch_dtype)
        finally:
            self.model = detach_adapter(peft_model)


def open_stack(config: Config, progress: bool, clock: Callable[[], float] = time.monotonic) -> Stack:
    """Load tokenizer and model and start the sampler once for the whole run."""
    set_offline()
    import torch

    timings = {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    check_backend(config.ttft, device)
    start = time.perf_counter()
    resolved = resolve(config.model.name, config.model.base)
    timings["model_resolve_s"] = time.perf_counter() - start
    dtype = resolve_dtype(config.model.dtype, device)
    start = time.perf_counter()
    tokenizer, model = load_model(resolved, dtype, device, config.ttft.gradient_checkpointing)
    timings["model_load_s"] = time.perf_counter() - start
    builder = PromptBuilder(tokenizer, create_encoder(config.prompt.encoder), config.prompt.max_seq_len,
                            config.prompt.system_prompt)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    autocast = getattr(torch, dtype) if device == "cuda" and dtype != "float32" else None
    trainer = Trainer(config.ttft, builder, pad_id, device, autocast, clock=clock, progress=progress)
    start = time.perf_counter()
    sampler = create_sampler(config.sampling, resolved.base_dir, dtype, config.prompt.max_seq_len,
                             config.run.seed, device)
    timings["engine_start_s"] = time.perf_counter() - start
    stack = Stack(config, resolved, model, sampler, trainer, builder, device, dtype, timings=timings)
    if resolved.adapter_dir is not None:
        sampler.load_weights(stack.start_weights())
    return stack
