"""The model dataset for Kaggle: `make kaggle-model MODEL=... [BASE=...]` calls this.

    python kaggle/model.py MODEL OUT [--base BASE]

A transformers folder (or the embedded alias) is copied into OUT as it is. A LoRA adapter folder is
copied whole with its base beside it: OUT/adapter/ (its adapter_config.json now names ../base) and
OUT/base/, so the notebook finds the adapter and the run resolves its base offline. OUT is emptied
first, keeping only dataset-metadata.json, so no file of an earlier model is left beside the new one.
An adapter whose base is not a folder here (a hub name) is refused in one line that says to give
BASE=/path/to/base.

Settings travel with the model: `--config` (a preset such as nvarc, or a TOML file; several joined by +)
and `--set section.field=value` (repeatable) are written, merged, into OUT/arc-submit.toml, which the
notebook lays over the preset it picks for the GPUs (and prints). model.name and model.base are left out:
on Kaggle the notebook names the model it found.

    python kaggle/model.py MODEL OUT --config nvarc --set ttft.steps=64
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

KEEP = "dataset-metadata.json"


def empty(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in out.iterdir():
        if path.name == KEEP:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def copy_model(model: str, out: Path, base: str = "") -> str:
    """Fill OUT with the model (see the module's docstring); what was copied, in words."""
    from arc_submit.errors import UserError
    from arc_submit.model.resolve import resolve

    try:
        resolved = resolve(model, base)
    except UserError as error:
        if "is not a folder on this machine" in str(error):
            raise UserError(f"{error.problems[0].split(';')[0]}; give its folder with "
                            f"`make kaggle-model MODEL={model} BASE=/path/to/base`") from None
        raise
    empty(out)
    if resolved.adapter_dir is None:
        shutil.copytree(resolved.base_dir, out, dirs_exist_ok=True)
        return f"model {resolved.base_dir}"
    shutil.copytree(resolved.adapter_dir, out / "adapter")
    shutil.copytree(resolved.base_dir, out / "base")
    config_file = out / "adapter" / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = "../base"
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    return f"adapter {resolved.adapter_dir} (into adapter/) and its base {resolved.base_dir} (into base/)"


SETTINGS = "arc-submit.toml"  # the notebook looks for it beside the model (or one folder up, for adapter/)


def main() -> int:
    from arc_submit.config import carried_settings
    from arc_submit.errors import UserError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="alias, transformers folder or LoRA adapter folder")
    parser.add_argument("out", type=Path, help="the model dataset's folder")
    parser.add_argument("--base", default="", help="an adapter's base model folder (when it names a hub model)")
    parser.add_argument("--config", default="", help="settings to carry: a preset (nvarc, architects, ...) or TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="a setting to carry (repeatable)")
    args = parser.parse_args()
    try:
        carried = args.config or args.set
        text, settings = carried_settings(args.config, args.set, "kaggle-model") if carried else ("", [])
        what = copy_model(args.model, args.out, args.base)
    except UserError as error:
        print(f"error: {error.problems[0]}", file=sys.stderr)
        return 2
    print(f"{args.out}: {what}")
    if text:
        (args.out / SETTINGS).write_text(text)
        print(f"{args.out / SETTINGS}, laid over the notebook's GPU preset:" + "".join(f"\n  {line}" for line in settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
