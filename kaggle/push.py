"""Push arc-submit to Kaggle in one command: the wheelhouse and model datasets (created, or versioned when they
exist, folders included, waited for until Kaggle says ready), then the notebook with its accelerator; at the
end, the command that submits it. `make kaggle-push` calls this.

    python kaggle/push.py                                   # datasets-meta/arc-submit-{wheels,model}, GPU L4 x4
    python kaggle/push.py --model-sources OWNER/MODEL/FRAMEWORK/VARIATION/VERSION --config nvarc

Before anything is uploaded it refuses, in one line: no `kaggle` command, no credentials, no owner, no built
wheelhouse, no model, an accelerator the CLI does not document, settings carried twice. What it pushes is
generated under --out (build/kaggle-push/): each dataset's folder (its files hard-linked, its
dataset-metadata.json written from the template in datasets-meta/ with the owner) and the kernel's folder (the
notebook, with the settings it carries, and kernel-metadata.json from the template in kaggle/). Names and
behaviour follow the kaggle CLI's source (Kaggle/kaggle-cli 2.2): `--dir-mode zip` uploads each folder as a
zip that Kaggle unpacks (the default, skip, leaves folders out), a push or upload error is printed with exit
status 0, and `model_sources` entries of five parts need the CLI 2.0.1 or newer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The accelerators kaggle-cli's docs list for `kernels push --accelerator` (docs/kernels.md, Feb 2026; the CLI
# itself passes any name on). NvidiaL4 is Kaggle's "GPU L4 x4" (ARC Prize 2025 and 2026), NvidiaTeslaT4 its
# "GPU T4 x2"; NvidiaTeslaP100, the default without one, is too old for the shipped torch.
ACCELERATORS = ("NvidiaL4", "NvidiaL4X1", "NvidiaTeslaT4", "NvidiaTeslaT4Highmem", "NvidiaTeslaA100", "NvidiaH100",
                "NvidiaRtxPro6000", "NvidiaTeslaP100")
PRESET_ACCELERATORS = {"kaggle-l4x4": "NvidiaL4", "kaggle-t4x2": "NvidiaTeslaT4"}  # a Kaggle preset's GPUs
MODEL_SOURCE = re.compile(r"^[^/\s]+/[^/\s]+/[^/\s]+/[^/\s]+/\d+$")  # OWNER/MODEL/FRAMEWORK/VARIATION/VERSION
# What the CLI prints, with exit status 0, when the service refused something.
REFUSED = re.compile(r"(push error|creation error|are not valid \w+ sources)", re.I)


class Refused(Exception):
    """A reason not to push, said in one line."""


# ---------------------------------------------------------------------------------------------------------------
# Before uploading: the CLI, credentials, owner, inputs.

def config_dir(env: dict, home: Path) -> Path:
    """The kaggle CLI's configuration folder: KAGGLE_CONFIG_DIR, else ~/.kaggle, else XDG's kaggle folder."""
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"])
    if (home / ".kaggle").is_dir():
        return home / ".kaggle"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"


def credentials(env: dict, home: Path) -> str:
    """Where the CLI will find credentials, in the order it looks (its `authenticate`); Refused if nowhere."""
    places = [("KAGGLE_API_TOKEN", bool(env.get("KAGGLE_API_TOKEN"))),
              (str(home / ".kaggle" / "access_token"), (home / ".kaggle" / "access_token").is_file()),
              (str(home / ".kaggle" / "access_token.txt"), (home / ".kaggle" / "access_token.txt").is_file()),
              ("KAGGLE_USERNAME and KAGGLE_KEY", bool(env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"))),
              (str(config_dir(env, home) / "kaggle.json"), (config_dir(env, home) / "kaggle.json").is_file()),
              (str(home / ".kaggle" / "credentials.json"), (home / ".kaggle" / "credentials.json").is_file())]
    found = [place for place, present in places if present]
    if not found:
        raise Refused("no Kaggle credentials: set KAGGLE_API_TOKEN (an API token from kaggle.com/settings), or put it "
                      f"in {home / '.kaggle' / 'access_token'}, or run `kaggle auth login`")
    return found[0]


def owner(env: dict, home: Path, kaggle: str) -> str:
    """The Kaggle user the datasets and notebook belong to: KAGGLE_USERNAME, else the CLI's configuration."""
    if env.get("KAGGLE_USERNAME"):
        return env["KAGGLE_USERNAME"]
    legacy = config_dir(env, home) / "kaggle.json"
    if legacy.is_file():
        name = json.loads(legacy.read_text()).get("username")
        if name:
            return name
    shown = subprocess.run([kaggle, "config", "view"], capture_output=True, text=True, env=env)
    found = re.search(r"^- username: (\S+)$", shown.stdout, re.M)
    if shown.returncode != 0 or not found or found.group(1) == "None":
        raise Refused("the Kaggle user is unknown (`kaggle config view` names none): set KAGGLE_USERNAME")
    return found.group(1)


def cli_version(kaggle: str) -> tuple[int, ...]:
    shown = subprocess.run([kaggle, "--version"], capture_output=True, text=True)
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", shown.stdout + shown.stderr)
    return tuple(int(part) for part in found.groups()) if found else (0, 0, 0)


def check_inputs(args: argparse.Namespace) -> tuple[bool, str]:
    """(push the model dataset?, the carried settings' TOML text or ''); Refused on what cannot work."""
    args.accelerator = PRESET_ACCELERATORS.get(args.accelerator, args.accelerator)
    if args.accelerator not in ACCELERATORS:
        raise Refused(f"ACCELERATOR={args.accelerator}: not an accelerator the kaggle CLI documents; use one of "
                      f"{', '.join(ACCELERATORS)} (or a Kaggle preset's name: {', '.join(PRESET_ACCELERATORS)})")
    if args.accelerator == "NvidiaTeslaP100":
        raise Refused("ACCELERATOR=NvidiaTeslaP100: a P100 (compute capability 6.0) is too old for the shipped torch "
                      "2.8 and vLLM; use NvidiaL4 (GPU L4 x4) or NvidiaTeslaT4 (GPU T4 x2)")
    manifest = args.wheels / "wheelhouse.json"
    if not manifest.is_file():
        raise Refused(f"{args.wheels}: no wheelhouse.json; build the wheelhouse first (`make kaggle-wheels`)")
    built_for = json.loads(manifest.read_text()).get("python")
    if built_for != args.python:
        raise Refused(f"{args.wheels} was built for Python {built_for}, and Kaggle's image runs {args.python} (the "
                      f"notebook would refuse it after the upload): rebuild it with `make kaggle-wheels "
                      f"KAGGLE_PYTHON={args.python}`")
    bad = [source for source in args.model_sources if not MODEL_SOURCE.match(source)]
    if bad:
        raise Refused(f"MODEL_SOURCES: {bad[0]} is not OWNER/MODEL/FRAMEWORK/VARIATION/VERSION (as on the model's "
                      "Kaggle page, e.g. someone/qwen3-4b/transformers/default/1)")
    has_model = (args.model / "config.json").is_file() or any(args.model.glob("*/adapter_config.json")) \
        or (args.model / "adapter_config.json").is_file()
    if not has_model and not args.model_sources:
        raise Refused(f"no model: {args.model} holds none (`make kaggle-model MODEL=...`) and MODEL_SOURCES names no "
                      "Kaggle Model")
    text = ""
    if args.config or args.set:
        if has_model and not args.model_sources and (args.model / "arc-submit.toml").is_file():
            raise Refused(f"two sources of settings: {args.model / 'arc-submit.toml'} (`make kaggle-model CONFIG/SET`) "
                          "and CONFIG/SET given to kaggle-push; keep one (the notebook would refuse both)")
        from arc_submit.config import carried_settings

        text, _ = carried_settings(args.config, args.set, "kaggle-push")
    return has_model and not args.model_sources, text


# ---------------------------------------------------------------------------------------------------------------
# What is pushed, generated under --out.

def link_tree(source: Path, target: Path, skip: tuple[str, ...] = ()) -> None:
    """TARGET as a copy of SOURCE whose files are hard links (no GBs copied); real folders, no symlinks: the
    CLI's zip of a folder keeps a symlinked folder as an empty entry."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.name in skip:
            continue
        if path.is_dir():
            link_tree(path, target / path.name)
        else:
            try:
                os.link(path.resolve(), target / path.name)
            except OSError:  # another file system: a copy
                shutil.copy2(path, target / path.name)


def stage_dataset(source: Path, slug: str, out: Path, owner_name: str) -> str:
    """OUT: SOURCE's files and folders, and the dataset-metadata.json of datasets-meta/SLUG/ (the tracked
    template: title, subtitle, licence) naming the owner; the dataset's handle."""
    template = json.loads((ROOT / "datasets-meta" / slug / "dataset-metadata.json").read_text())
    link_tree(source, out, skip=("dataset-metadata.json",))
    handle = f"{owner_name}/{slug}"
    (out / "dataset-metadata.json").write_text(json.dumps({**template, "id": handle}, indent=2) + "\n")
    return handle


def notebook_with_settings(notebook: dict, settings: str) -> dict:
    """The notebook with NOTEBOOK_SETTINGS set to SETTINGS (TOML text) in its first code cell."""
    marker = 'NOTEBOOK_SETTINGS = ""'
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and marker in source:
            cell["source"] = source.replace(marker, f"NOTEBOOK_SETTINGS = {settings!r}").splitlines(keepends=True)
            return notebook
    raise RuntimeError(f"the notebook has no line {marker}")  # a bug in the notebook, not the user's input


def stage_kernel(out: Path, owner_name: str, datasets: list[str], args: argparse.Namespace, settings: str) -> str:
    """OUT: the notebook and its kernel-metadata.json; the kernel's handle."""
    template = json.loads((HERE / "kernel-metadata.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    notebook = json.loads((HERE / template["code_file"]).read_text())
    if settings:
        notebook = notebook_with_settings(notebook, settings)
    (out / template["code_file"]).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    handle = f"{owner_name}/{template['id'].split('/')[-1]}"
    metadata = {**template, "id": handle, "dataset_sources": datasets, "competition_sources": [args.competition],
                "model_sources": list(args.model_sources), "machine_shape": args.accelerator,
                "enable_gpu": True, "enable_internet": False}
    (out / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return handle


# ---------------------------------------------------------------------------------------------------------------
# Talking to Kaggle through its CLI.

def cli(kaggle: str, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the kaggle CLI, its output passed on; a failure (or an error it prints with status 0) raises."""
    print("$ kaggle " + " ".join(arguments), flush=True)
    done = subprocess.run([kaggle, *arguments], capture_output=True, text=True)
    print((done.stdout + done.stderr).rstrip(), flush=True)
    said = (done.stdout + done.stderr).strip().splitlines()
    refused = [line for line in said if REFUSED.search(line)]
    if check and (done.returncode != 0 or refused):
        reason = (refused or said or [f"exit status {done.returncode}"])[-1]
        raise Refused(f"`kaggle {' '.join(arguments[:2])}` failed: {reason}")
    return done


def upload(kaggle: str, folder: Path, handle: str, message: str, wait_s: float, poll_s: float) -> None:
    """Create the dataset, or a new version when it exists, with its folders; wait until Kaggle says ready."""
    exists = cli(kaggle, "datasets", "status", handle, check=False).returncode == 0
    if exists:
        cli(kaggle, "datasets", "version", "-p", str(folder), "-m", message, "--dir-mode", "zip")
    else:
        cli(kaggle, "datasets", "create", "-p", str(folder), "--dir-mode", "zip")
    deadline = time.monotonic() + wait_s
    while True:
        status = subprocess.run([kaggle, "datasets", "status", handle], capture_output=True, text=True).stdout.strip()
        if status == "ready":
            print(f"{handle}: ready")
            return
        if status in ("failed", "deleted"):
            raise Refused(f"Kaggle says the dataset {handle} is {status}: see its page on kaggle.com")
        if time.monotonic() > deadline:
            raise Refused(f"{handle} is still '{status}' after {wait_s:.0f} s; run `make kaggle-push` again when "
                          "its page says it is ready (nothing is uploaded twice that Kaggle has)")
        time.sleep(poll_s)


def push(args: argparse.Namespace, env: dict, home: Path) -> str:
    """Everything, in order; the submit command to print."""
    kaggle = shutil.which("kaggle", path=env.get("PATH"))
    if kaggle is None:
        raise Refused("no `kaggle` command on PATH: `pip install kaggle` (2.0.1 or newer), then run this again")
    credentials(env, home)
    version = cli_version(kaggle)
    if args.model_sources and version < (2, 0, 1):
        raise Refused(f"MODEL_SOURCES needs the kaggle CLI 2.0.1 or newer (it has {'.'.join(map(str, version))}): "
                      "`pip install -U kaggle`")
    push_model, settings = check_inputs(args)
    name = owner(env, home, kaggle)
    datasets = [stage_dataset(args.wheels, "arc-submit-wheels", args.out / "arc-submit-wheels", name)]
    if push_model:
        datasets.append(stage_dataset(args.model, "arc-submit-model", args.out / "arc-submit-model", name))
    else:
        print(f"the model comes from {', '.join(args.model_sources)}: {args.model} is not uploaded")
    kernel = stage_kernel(args.out / "kernel", name, datasets, args, settings)
    message = f"arc-submit for Python {args.python}"
    for handle in datasets:
        folder = args.out / handle.split("/")[1]
        upload(kaggle, folder, handle, message, args.wait, args.poll)
    pushed = cli(kaggle, "kernels", "push", "-p", str(args.out / "kernel"), "--accelerator", args.accelerator)
    number = re.search(r"Kernel version (\d+) successfully pushed", pushed.stdout)
    return (f"kaggle competitions submit {args.competition} -f submission.json -k {kernel} "
            f"-v {number.group(1) if number else 'VERSION'} -m \"arc-submit\"")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / "datasets-meta" / "arc-submit-wheels")
    parser.add_argument("--model", type=Path, default=ROOT / "datasets-meta" / "arc-submit-model",
                        help="the model dataset's folder (make kaggle-model)")
    parser.add_argument("--model-sources", nargs="*", default=[], metavar="OWNER/MODEL/FRAMEWORK/VARIATION/VERSION",
                        help="Kaggle Models to attach; the model dataset is then not uploaded")
    parser.add_argument("--competition", default="arc-prize-2026-arc-agi-2")
    parser.add_argument("--python", default="3.12",
                        help="the Python of Kaggle's image, which the wheelhouse must be for")
    parser.add_argument("--accelerator", default="NvidiaL4",
                        help=f"one of {', '.join(ACCELERATORS)}, or a Kaggle preset's name for its GPUs")
    parser.add_argument("--config", default="", help="settings the notebook carries: a preset or TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "kaggle-push")
    parser.add_argument("--wait", type=float, default=3600, help="seconds to wait for a dataset to be ready")
    parser.add_argument("--poll", type=float, default=15, help="seconds between two looks at a dataset's status")
    args = parser.parse_args()
    from arc_submit.errors import UserError

    try:
        submit = push(args, dict(os.environ), Path.home())
    except (Refused, UserError) as error:
        reason = error.problems[0] if isinstance(error, UserError) else str(error)
        print(f"kaggle-push: {reason}", file=sys.stderr)
        return 2
    print(f"pushed. When the notebook's run has finished on Kaggle, submit it:\n  {submit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
