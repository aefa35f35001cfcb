"""Write the manifest of a wheelhouse folder, which the Kaggle notebook reads before installing.

    python kaggle/wheelhouse.py datasets-meta/arc-submit-wheels --extra gpu --python 3.12
    python kaggle/wheelhouse.py build/kaggle-sim/wheels --twin --python 3.12      # make kaggle-sim

`wheelhouse.json` says what to install (an extra of arc-submit: gpu on Kaggle; or, for the simulation,
the CPU twin of the gpu extra that kaggle/stack.py wrote into the folder: requirements.txt, and
no-deps.txt installed without dependencies), for which Python, the pip wheel that installs it (Kaggle's
Python has no ensurepip: the notebook's environment is made without pip and gets it from this wheel),
which packages to remove after the install, and the folder's size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    stack = parser.add_mutually_exclusive_group(required=True)
    stack.add_argument("--extra", choices=["gpu", "cpu"], help="install arc-submit[EXTRA]")
    stack.add_argument("--twin", action="store_true", help="install the CPU twin kaggle/stack.py wrote here")
    parser.add_argument("--python", required=True, help="the Python version the wheels were chosen for, e.g. 3.11")
    parser.add_argument("--remove", nargs="*", default=[], help="packages to uninstall after installing")
    args = parser.parse_args()
    wheels = sorted(args.folder.glob("*.whl"))
    if not any(wheel.name.startswith("arc_submit-") for wheel in wheels):
        raise SystemExit(f"{args.folder}: no arc_submit wheel; build it first")
    pips = [wheel.name for wheel in wheels if wheel.name.startswith("pip-")]
    if len(pips) != 1:
        raise SystemExit(f"{args.folder}: {len(pips)} pip wheels ({', '.join(pips) or 'none'}); the notebook needs one "
                         "to install with (Kaggle's Python has no ensurepip)")
    manifest = {"stack": args.extra or "kaggle-twin", "extra": args.extra, "python": args.python, "pip": pips[0],
                "remove": args.remove}
    if args.twin:
        missing = [name for name in ("requirements.txt", "no-deps.txt") if not (args.folder / name).is_file()]
        if missing:
            raise SystemExit(f"{args.folder}: no {' or '.join(missing)}; run kaggle/stack.py twin --out {args.folder}")
        manifest["requirements"] = "requirements.txt"
        manifest["no_deps"] = (args.folder / "no-deps.txt").read_text().split()
    manifest.update(files=len(wheels), bytes=sum(wheel.stat().st_size for wheel in wheels))
    (args.folder / "wheelhouse.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{args.folder}: {manifest['files']} wheels, {manifest['bytes'] / 2**30:.2f} GiB, stack {manifest['stack']}, "
          f"Python {args.python}")


if __name__ == "__main__":
    main()
