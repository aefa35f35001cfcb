"""Write the manifest of a wheelhouse folder, which the Kaggle notebook reads before installing.

    python kaggle/wheelhouse.py datasets-meta/arc-submit-wheels --extra gpu --python 3.11

`wheelhouse.json` says which extra of arc-submit to install (gpu on Kaggle, cpu in the simulation),
for which Python, which packages to remove after the install, and the folder's size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--extra", required=True, choices=["gpu", "cpu"])
    parser.add_argument("--python", required=True, help="the Python version the wheels were chosen for, e.g. 3.11")
    parser.add_argument("--remove", nargs="*", default=[], help="packages to uninstall after installing")
    args = parser.parse_args()
    wheels = sorted(args.folder.glob("*.whl"))
    if not any(wheel.name.startswith("arc_submit-") for wheel in wheels):
        raise SystemExit(f"{args.folder}: no arc_submit wheel; build it first")
    manifest = {
        "extra": args.extra,
        "python": args.python,
        "remove": args.remove,
        "files": len(wheels),
        "bytes": sum(wheel.stat().st_size for wheel in wheels),
    }
    (args.folder / "wheelhouse.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{args.folder}: {manifest['files']} wheels, {manifest['bytes'] / 2**30:.2f} GiB, extra {args.extra}, "
          f"Python {args.python}")


if __name__ == "__main__":
    main()
