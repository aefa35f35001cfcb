"""Merge: base weights + LoRA deltas -> the full set of weights the sampler loads, in its dtype.

The base model is left untouched (no merge-then-unmerge rounding), so the next task starts from the
exact base weights:

    weights = merged_weights(peft_model, torch.float32)   # {"model.layers.0.self_attn.q_proj.weight": ...}
"""

from __future__ import annotations


def merged_weights(peft_model, dtype) -> dict:
    """Every weight of the model under its plain transformers name, LoRA deltas added, cast to `dtype`."""
    import torch
    from peft.tuners.lora import LoraLayer

    inner = peft_model.get_base_model()
    adapter = peft_model.active_adapter
    lora_modules = {name: module for name, module in inner.named_modules() if isinstance(module, LoraLayer)}
    weights = {}
    with torch.no_grad():
        for name, tensor in inner.state_dict().items():
            if ".lora_" in name or "lora_magnitude" in name:
                continue
            module_name, _, leaf = name.rpartition(".base_layer.")
            if module_name in lora_modules and leaf == "weight":
                module = lora_modules[module_name]
                delta = module.get_delta_weight(adapter).to(torch.float32)
                tensor = tensor.to(torch.float32) + delta
                name = f"{module_name}.weight"
            elif ".base_layer." in name:
                name = name.replace(".base_layer.", ".")
            weights[name] = tensor.detach().to(dtype).contiguous()
    return weights


def base_weights(model, dtype) -> dict:
    """The plain model's weights, cast to `dtype` (what the sampler loads when there is no adapter)."""
    import torch

    with torch.no_grad():
        return {name: tensor.detach().to(dtype).contiguous() for name, tensor in model.state_dict().items()}
