"""Merge: base weights + LoRA deltas -> the full set of weights a sampler loads, in its dtype, streamed
one tensor at a time (a push never holds a third full copy of the model).

The base model is left untouched (no merge-then-unmerge rounding), so the next task starts from the
exact base weights:

    for name, tensor in iter_merged_weights(peft_model, torch.float32):   # "model.layers.0.self_attn.q_proj.weight", ...
        ...
    weights = merged_weights(peft_model, torch.float32)                    # the same as a dict
"""

from __future__ import annotations

from collections.abc import Iterator


def iter_merged_weights(peft_model, dtype) -> Iterator[tuple]:
    """Every weight of the model under its plain transformers name, LoRA deltas added, cast to `dtype`;
    each merged tensor is made when it is asked for. The model must stay attached while this runs."""
    import torch
    from peft.tuners.lora import LoraLayer

    inner = peft_model.get_base_model()
    adapter = peft_model.active_adapter
    lora_modules = {name: module for name, module in inner.named_modules() if isinstance(module, LoraLayer)}
    for name, tensor in inner.state_dict().items():
        if ".lora_" in name or "lora_magnitude" in name:
            continue
        module_name, _, leaf = name.rpartition(".base_layer.")
        with torch.no_grad():
            if module_name in lora_modules and leaf == "weight":
                delta = lora_modules[module_name].get_delta_weight(adapter).to(torch.float32)
                yield f"{module_name}.weight", (tensor.to(torch.float32) + delta).to(dtype).contiguous()
                continue
            yield name.replace(".base_layer.", "."), tensor.detach().to(dtype).contiguous()


def merged_weights(peft_model, dtype) -> dict:
    """iter_merged_weights as a dict (every merged tensor held at once)."""
    return dict(iter_merged_weights(peft_model, dtype))


def iter_base_weights(model, dtype) -> Iterator[tuple]:
    """The plain model's weights, cast to `dtype` (what the sampler loads when there is no adapter)."""
    import torch

    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            yield name, tensor.detach().to(dtype).contiguous()
