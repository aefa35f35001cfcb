"""Loading a model for a run: the dtype for the device, then tokenizer and model from a resolved folder.

    tokenizer, model, dtype = load_model(resolve("smollm2-135m"), "auto", "cpu")
"""

from __future__ import annotations

from arc_submit.model.resolve import ResolvedModel, set_offline


def resolve_dtype(name: str, device: str) -> str:
    """The dtype to load and sample in: as configured, or for `auto` float32 on CPU and bf16 on GPUs
    that have it (else float16)."""
    import torch

    if name != "auto":
        return name
    if device == "cpu":
        return "float32"  # CPUs without bf16 instructions run bf16 ~20x slower
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_model(resolved: ResolvedModel, dtype: str, device: str, gradient_checkpointing: bool = False):
    """(tokenizer, frozen model on `device`) of the resolved base folder, in `dtype`."""
    set_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(resolved.base_dir)
    model = AutoModelForCausalLM.from_pretrained(resolved.base_dir, dtype=getattr(torch, dtype)).to(device)
    model.requires_grad_(False)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return tokenizer, model
