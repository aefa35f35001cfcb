"""Write the manifest of a wheelhouse folder, which the Kaggle notebook reads before installing.

    python kaggle/wheelhouse.py datasets-meta/arc-submit-wheels --extra gpu --python 3.12
    python kaggle/wheelhouse.py build/kaggle-sim/wheels --twin --python 3.12      # make kaggle-sim

`wheelhouse.json` says what to install (an extra of arc-submit: gpu on Kaggle; or, for the simulation,
the CPU twin of the gpu extra that kaggle/stack.py wrote into the folder: requirements.txt, and
no-deps.txt installed without dependencies), for which Python, the pip wheel that installs it (Kaggle's
Python has no ensurepip: the notebook's environment is made without pip and gets it from this wheel),
which packages to remove after the install, and the folder's size.

A wheelhouse that cannot install on the target Python is refused: every requirement that applies there
(markers evaluated for that Python on Linux x86_64, extras followed) must have a wheel here. pip download
evaluates markers for the Python it runs on, whatever --python-version says (pypa/pip#11010), so a
wheelhouse built on Python 3.11 misses what only 3.12 needs: vLLM 0.11 asks for setuptools<80 on
Python > 3.11 alone, and without it the notebook's offline install fails on Kaggle. `--unmet-to FILE`
writes those requirements instead, for the Makefile to download and ask again. `--resolve-with PYTHON`
(a Python of the target version, as `make kaggle-wheels` finds one) then has pip resolve the install as the
notebook will run it, offline from this folder with its own pip wheel, and refuses what pip refuses (a tag
or Requires-Python no marker shows).
Standard library only (and pip's vendored `packaging`): it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import zipfile
from pathlib import Path

from pip._vendor.packaging.markers import Marker
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
from pip._vendor.packaging.version import Version

# Kaggle's platform, whatever machine builds the wheelhouse.
PLATFORM = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def target(python: str) -> dict[str, str]:
    """Marker variables of CPython PYTHON ("3.12") on Kaggle's platform."""
    return {**PLATFORM, "python_version": python, "python_full_version": f"{python}.0"}


def applies(marker: Marker | None, extras: set[str], environment: dict[str, str]) -> bool:
    return marker is None or any(marker.evaluate({**environment, "extra": extra}) for extra in extras | {""})


def wheel_index(folder: Path) -> dict[str, list[tuple[Version, list[Requirement]]]]:
    """{name: [(version, requirements)]}, newest first, of every wheel in FOLDER."""
    found: dict[str, list[tuple[Version, list[Requirement]]]] = {}
    for wheel in sorted(folder.glob("*.whl")):
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
            with zipfile.ZipFile(wheel) as archive:
                [metadata] = [path for path in archive.namelist()
                              if path.endswith(".dist-info/METADATA") and path.count("/") == 1]
                lines = archive.read(metadata).decode().splitlines()
        except (ValueError, zipfile.BadZipFile, KeyError) as error:
            raise SystemExit(f"{wheel}: not a readable wheel ({error})") from None
        requirements = [Requirement(line.split(":", 1)[1].strip()) for line in lines
                        if line.startswith("Requires-Dist:")]
        found.setdefault(name, []).append((version, requirements))
    return {name: sorted(versions, key=lambda pair: pair[0], reverse=True) for name, versions in found.items()}


def unmet(folder: Path, python: str, roots: list[Requirement],
          no_deps: list[Requirement] = ()) -> list[tuple[str, str, str]]:
    """Each requirement, from ROOTS through every wheel's own (NO_DEPS: present, installed without theirs),
    that applies on CPython PYTHON on Kaggle's platform and that no wheel in FOLDER satisfies, as (requirement,
    what needs it, the versions here); several on one name must be met by one wheel, as pip's resolver needs."""
    environment, wheels = target(python), wheel_index(folder)
    needed: dict[str, list[tuple[Requirement, str]]] = {}
    followed: set[tuple[str, frozenset[str]]] = set()
    queue = [(requirement, "the install", False) for requirement in roots]
    queue += [(requirement, "the install (without dependencies)", True) for requirement in no_deps]
    while queue:
        requirement, needed_by, alone = queue.pop()
        if not applies(requirement.marker, {""}, environment):
            continue
        name = canonicalize_name(requirement.name)
        needed.setdefault(name, []).append((requirement, needed_by))
        chosen = next((pair for pair in wheels.get(name, []) if requirement.specifier.contains(pair[0], True)), None)
        if chosen is None or alone or (name, frozenset(requirement.extras)) in followed:
            continue
        followed.add((name, frozenset(requirement.extras)))
        version, own = chosen
        for dependency in own:
            if applies(dependency.marker, set(requirement.extras), environment):
                dependency.marker = None
                queue.append((dependency, f"{name} {version}", False))
    problems = []
    for name, requirements in sorted(needed.items()):
        versions = [version for version, _ in wheels.get(name, [])]
        if not any(all(r.specifier.contains(version, True) for r, _ in requirements) for version in versions):
            have = ", ".join(map(str, versions)) or "none"
            for requirement, needed_by in requirements:
                if not versions or not all(requirement.specifier.contains(version, True) for version in versions):
                    problems.append((f"{requirement.name}{requirement.specifier}", needed_by, have))
    return sorted(set(problems))


def roots_of(folder: Path, extra: str | None) -> tuple[list[Requirement], list[Requirement]]:
    """(what the notebook installs with its dependencies, what it installs without them)."""
    if extra:
        return [Requirement(f"arc-submit[{extra}]")], []
    missing = [name for name in ("requirements.txt", "no-deps.txt") if not (folder / name).is_file()]
    if missing:
        raise SystemExit(f"{folder}: no {' or '.join(missing)}; run kaggle/stack.py twin --out {folder}")
    return [Requirement("arc-submit")] + requirements_in(folder / "requirements.txt"), \
        requirements_in(folder / "no-deps.txt")


def resolve_with(python: str, folder: Path, version: str, pip_wheel: str, extra: str | None) -> None:
    """pip on PYTHON (of VERSION) resolves the notebook's install from FOLDER alone, run from the folder's pip wheel as
    the notebook runs it, nothing installed (--dry-run); no pip configuration or PIP_ variable of this machine."""
    try:
        found = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        said = found.stdout.strip() if found.returncode == 0 else (found.stderr.strip().splitlines() or ["?"])[-1]
    except OSError as error:
        said = error.strerror
    if said != version:
        raise SystemExit(f"{python}: not a Python {version} ({said}); --resolve-with needs one of the wheelhouse's "
                         "version")
    wanted = [f"arc-submit[{extra}]"] if extra else ["arc-submit", "-r", str(folder / "requirements.txt")]
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    environment.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_COLOR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run([python, str(folder / pip_wheel / "pip"), "install", "--dry-run", "--ignore-installed",
                           "--no-index", "--find-links", str(folder), "-q", *wanted],
                          env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode:
        raise SystemExit(f"{folder}: pip on Python {version} ({python}) would not install it: "
                         f"{lines[-1] if lines else f'exit {done.returncode}'}")
    print(f"{folder}: pip on Python {version} resolves {' '.join(wanted)} from it offline")


def requirements_in(path: Path) -> list[Requirement]:
    return [Requirement(line) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    stack = parser.add_mutually_exclusive_group(required=True)
    stack.add_argument("--extra", choices=["gpu", "cpu"], help="install arc-submit[EXTRA]")
    stack.add_argument("--twin", action="store_true", help="install the CPU twin kaggle/stack.py wrote here")
    parser.add_argument("--python", required=True, help="the Python version the wheels were chosen for, e.g. 3.11")
    parser.add_argument("--remove", nargs="*", default=[], help="packages to uninstall after installing")
    parser.add_argument("--unmet-to", type=Path, metavar="FILE",
                        help="write the requirements no wheel here meets on that Python to FILE (a pip requirements "
                             "file, empty when none) instead of the manifest")
    parser.add_argument("--resolve-with", metavar="PYTHON",
                        help="a Python of the wheelhouse's version whose pip (the folder's wheel) must resolve the "
                             "notebook's install offline from the folder before the manifest is written")
    args = parser.parse_args()
    wheels = sorted(args.folder.glob("*.whl"))
    if not any(wheel.name.startswith("arc_submit-") for wheel in wheels):
        raise SystemExit(f"{args.folder}: no arc_submit wheel; build it first")
    pips = [wheel.name for wheel in wheels if wheel.name.startswith("pip-")]
    if len(pips) != 1:
        raise SystemExit(f"{args.folder}: {len(pips)} pip wheels ({', '.join(pips) or 'none'}); the notebook needs one "
                         "to install with (Kaggle's Python has no ensurepip)")
    roots, no_deps = roots_of(args.folder, args.extra)
    problems = unmet(args.folder, args.python, roots, no_deps)
    if args.unmet_to:
        args.unmet_to.write_text("".join(f"{requirement}\n" for requirement, _, _ in problems))
        return
    if problems:
        said = "; ".join(f"{requirement} (needed by {by}; here: {have})" for requirement, by, have in problems)
        raise SystemExit(f"{args.folder}: would not install on Python {args.python}: {len(problems)} requirement(s) "
                         f"without a wheel here: {said}; build it with `make kaggle-wheels`, which downloads them")
    if args.resolve_with:
        resolve_with(args.resolve_with, args.folder, args.python, pips[0], args.extra)
    manifest = {"stack": args.extra or "kaggle-twin", "extra": args.extra, "python": args.python, "pip": pips[0],
                "remove": args.remove}
    if args.twin:
        manifest["requirements"] = "requirements.txt"
        manifest["no_deps"] = [str(requirement) for requirement in no_deps]
    manifest.update(files=len(wheels), bytes=sum(wheel.stat().st_size for wheel in wheels))
    (args.folder / "wheelhouse.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{args.folder}: {manifest['files']} wheels, {manifest['bytes'] / 2**30:.2f} GiB, stack {manifest['stack']}, "
          f"Python {args.python}")


if __name__ == "__main__":
    main()
