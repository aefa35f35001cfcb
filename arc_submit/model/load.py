"""Loading a model for a run: the dtype for the device, checks against the model's own limits, then
tokenizer, prompt builder and model from a resolved folder.

    dtype = resolve_dtype("auto", "cuda")              # bfloat16 on compute capability >= 8, else float16
    check_context(resolved, max_seq_len=8192)          # UserError naming both numbers when it is too long
    tokenizer, model = load_model(resolve("smollm2-135m"), dtype, "cpu")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from arc_submit.config import PromptConfig
from arc_submit.data.encoders import create as create_encoder
from arc_submit.data.prompts import PromptBuilder, load_format
from arc_submit.errors import UserError
from arc_submit.model.resolve import ResolvedModel, set_offline

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
# The CPU flags (/proc/cpuinfo: x86 "flags", Arm "Features") that give a half precision its own instructions.
# Without them torch emulates it, many times slower than float32 on a matrix product (the numbers:
# benchmarks/RESULTS.md, "Precision and the compiled engine", and benchmarks/LOG.md).
HALF_PRECISION_FLAGS = {"bfloat16": {"avx512_bf16", "amx_bf16", "bf16"},
                        "float16": {"avx512_fp16", "amx_fp16", "asimdhp"}}

log = logging.getLogger("arc_submit")


def resolve_dtype(name: str, device: str, capability: tuple[int, int] | None = None) -> str:
    """The dtype to load and sample in: as configured, or for `auto` float32 on CPU, bfloat16 on GPUs of
    compute capability 8 or more (Ampere: A100, L4, H100) and float16 below (T4, V100), where bf16 is
    only emulated and vLLM refuses it."""
    if name != "auto":
        return name
    if device == "cpu":
        return "float32"  # see HALF_PRECISION_FLAGS; with bf16 instructions bfloat16 is faster, but scored lower
        # on the 8 local tasks (benchmarks/RESULTS.md, "Precision and the compiled engine")
    if capability is None:
        import torch

        capability = torch.cuda.get_device_capability()
    return "bfloat16" if capability[0] >= 8 else "float16"


def context_length(resolved: ResolvedModel) -> int | None:
    """The model's context length from its config.json (None when it does not say)."""
    config = json.loads((resolved.base_dir / "config.json").read_text(encoding="utf-8"))
    config = {**config.get("text_config", {}), **config}
    return next((config[key] for key in CONTEXT_KEYS if isinstance(config.get(key), int)), None)


def kv_bytes_per_token(model_dir: Path, dtype: str) -> int:
    """Bytes of KV cache one token takes in a model of this config.json: a key and a value per layer and
    KV head, head_dim numbers each, in `dtype`."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    config = {**config.get("text_config", {}), **config}
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    width = 4 if dtype == "float32" else 2
    return 2 * config["num_hidden_layers"] * config.get("num_key_value_heads", heads) * head_dim * width


def check_context(resolved: ResolvedModel, max_seq_len: int) -> None:
    """Refuse a prompt.max_seq_len longer than the model's context, before any engine starts."""
    limit = context_length(resolved)
    if limit is not None and max_seq_len > limit:
        raise UserError(f"prompt.max_seq_len = {max_seq_len} is longer than the context of {resolved.base_dir.name} "
                        f"({limit} tokens, max_position_embeddings in its config.json): set prompt.max_seq_len <= {limit}")


def prompt_builder(tokenizer, prompt: PromptConfig) -> PromptBuilder:
    """The builder of the configured format and encoder; refused in one line when the tokenizer cannot
    encode what they write (PromptBuilder.check_vocabulary)."""
    builder = PromptBuilder(tokenizer, create_encoder(prompt.encoder), prompt.max_seq_len, load_format(prompt.format),
                            prompt.system_prompt)
    builder.check_vocabulary(prompt.format)
    return builder


def quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def cpu_lacks_instructions_for(dtype: str, cpuinfo: str | None = None) -> bool:
    """Whether the CPU says (`cpuinfo`: the text of /proc/cpuinfo, read when not given) that it has no
    instructions for the half precision `dtype`; False for float32, and where the CPU does not say."""
    if dtype not in HALF_PRECISION_FLAGS:
        return False
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    flags = next((line.partition(":")[2].split() for line in cpuinfo.splitlines()
                  if line.partition(":")[0].strip() in ("flags", "Features")), None)  # every core lists the same
    return flags is not None and not HALF_PRECISION_FLAGS[dtype] & set(flags)


def load_model(resolved: ResolvedModel, dtype: str, device: str, gradient_checkpointing: bool = False):
    """(tokenizer, frozen model on `device`) of the resolved base folder, in `dtype`; on a CPU without
    instructions for that half precision, a warning that the run will be many times slower."""
    set_offline()
    if device == "cpu" and cpu_lacks_instructions_for(dtype):
        log.warning("model.dtype = %s on a CPU without instructions for it (none of %s in /proc/cpuinfo): torch "
                    "emulates it, many times slower than float32 (the CPU default)", dtype,
                    ", ".join(sorted(HALF_PRECISION_FLAGS[dtype])))
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
