"""`python -m arc_submit config [--config PRESET_OR_TOML] [--set SECTION.FIELD=VALUE ...] [--diff | --markdown]`:
every setting a command would run with, one a line, `section.field = value  # default D; help`: TOML that
--config reads back, and lines that grep and diff well. `--diff`: only what the preset and --set change;
`--markdown`: the reference page of every setting and preset (docs/config.md).

    python -m arc_submit config --config kaggle-l4x4+nvarc --diff
"""

from __future__ import annotations

import argparse
import sys

from arc_submit.errors import UserError

DEFAULT_PRESET = "cpu"  # what every other command starts from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"preset or TOML file, or several joined by + (default {DEFAULT_PRESET}, "
                                         "as for every command)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a setting, e.g. --set ttft.steps=8 (repeatable)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--diff", action="store_true", help="only the settings whose value differs from the default")
    shown.add_argument("--markdown", action="store_true",
                       help="the reference page of every setting and preset, as docs/config.md holds it")


def main(args: argparse.Namespace) -> int:
    from arc_submit import config_reference
    from arc_submit.config import load_config

    if args.markdown:
        if args.config or args.set:
            raise UserError("--markdown documents the defaults and every preset at once: leave out --config and --set")
        sys.stdout.write(config_reference.markdown())
        return 0
    given = " ".join([f"--config {args.config or DEFAULT_PRESET}"] + [f"--set {text}" for text in args.set])
    settings = config_reference.describe(load_config(args.config or DEFAULT_PRESET, args.set))
    changed = [s for s in settings if s.changed]
    if args.diff:
        print(f"# {given}: the {len(changed)} of {len(settings)} settings that differ from the default")
    else:
        print(f"# {given}: all {len(settings)} settings ({len(changed)} differ from the default)")
    print("\n".join(config_reference.lines(changed if args.diff else settings)))
    return 0
