"""A stand-in for the `kaggle` CLI and the service behind it, for `make kaggle-sim` and the tests (Kaggle cannot
be reached from here). It does to a folder what the CLI 2.2 does to it (Kaggle/kaggle-cli's
kaggle_api_extended.py), and keeps what Kaggle would keep in a server folder: SERVER/datasets/OWNER/SLUG/,
SERVER/kernels/OWNER/SLUG/ (the notebook and its metadata, the accelerator asked for as machine_shape),
SERVER/models/OWNER/MODEL/FRAMEWORK/VARIATION/VERSION/ and SERVER/competitions/SLUG/ (put there by whoever
plays Kaggle: kaggle/simulate.py mounts a pushed kernel's inputs from them).

    KAGGLE_STANDIN_SERVER=/tmp/server python kaggle/standin.py datasets create -p FOLDER --dir-mode zip

Like the CLI: only a folder's top level is read; a subfolder is skipped unless --dir-mode is zip or tar (then it
goes up as NAME.zip or NAME.tar, made by shutil.make_archive, and the service unpacks it into NAME/); an error
of the service (a dataset that exists, a source that does not) is printed with exit status 0; `datasets status`
prints the status with no newline, and exits 1 for a dataset that does not exist. Every call is appended to
SERVER/calls.jsonl (its arguments and working folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

VERSION = "2.2.3"
SKIPPED = {"dataset-metadata.json", "datapackage.json", "kernel-metadata.json", "model-metadata.json",
           "model-instance-metadata.json"}


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source.resolve(), target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def upload_folder(folder: Path, stored: Path, dir_mode: str) -> None:
    """What the CLI uploads of FOLDER and the service keeps, into STORED: top-level files as they are, each
    subfolder archived and unpacked again (or skipped, as the CLI's default does)."""
    shutil.rmtree(stored, ignore_errors=True)
    stored.mkdir(parents=True)
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if name in SKIPPED or name.startswith("dataset-cover-image"):
            continue
        if path.is_file():
            link(path, stored / name)
        elif path.is_dir() and dir_mode == "skip":
            print(f"Skipping folder: {name}; use '--dir-mode' to upload folders")
        elif path.is_dir():
            with tempfile.TemporaryDirectory() as scratch:
                archive = shutil.make_archive(os.path.join(scratch, name), "zip" if dir_mode == "zip" else "tar", path)
                shutil.unpack_archive(archive, stored / name)
        else:
            print(f"Skipping: {name}")


def datasets(args: argparse.Namespace, server: Path) -> int:
    if args.action == "status":
        if not (server / "datasets" / args.handle).is_dir():
            print(f"404 Client Error: Not Found for dataset {args.handle}", file=sys.stderr)
            return 1
        print("ready", end="")
        return 0
    folder = Path(args.path or ".")
    handle = json.loads((folder / "dataset-metadata.json").read_text())["id"]
    stored = server / "datasets" / handle
    if args.action == "create" and stored.exists():
        print("Dataset creation error: The requested title is already in use by a dataset.")
        return 0
    if args.action == "version" and not stored.exists():
        print(f"404 Client Error: Not Found for dataset {handle}", file=sys.stderr)
        return 1
    upload_folder(folder, stored, args.dir_mode)
    if args.action == "create":
        print(f"Your private Dataset is being created. Please check progress at https://www.kaggle.com/datasets/{handle}")
    else:
        print(f"Dataset version is being created. Please check progress at https://www.kaggle.com/datasets/{handle}")
    return 0


def kernels_push(args: argparse.Namespace, server: Path) -> int:
    folder = Path(args.path or ".")
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    if len(metadata.get("title", "")) < 5 or not (folder / metadata["code_file"]).is_file():
        print("Invalid kernel metadata: a title of 5 characters or more and an existing code_file are required",
              file=sys.stderr)
        return 1
    for source in metadata.get("model_sources", []):
        parts = source.split("/")
        if len(parts) != 5 or not parts[4].isdigit():
            print("Model instance version must be specified in the form of "
                  "'{owner}/{model-slug}/{framework}/{instance-slug}/{version-number}'", file=sys.stderr)
            return 1
    missing = [handle for handle in metadata.get("dataset_sources", []) if not (server / "datasets" / handle).is_dir()]
    missing += [handle for handle in metadata.get("model_sources", []) if not (server / "models" / handle).is_dir()]
    if missing:
        print(f"The following are not valid dataset sources and could not be added to the kernel: {missing}")
    stored = server / "kernels" / metadata["id"]
    shutil.rmtree(stored, ignore_errors=True)
    stored.mkdir(parents=True)
    shutil.copy2(folder / metadata["code_file"], stored / metadata["code_file"])
    pushed = {**metadata, "machine_shape": args.acc or metadata.get("machine_shape")}
    (stored / "kernel-metadata.json").write_text(json.dumps(pushed, indent=2) + "\n")
    print(f"Kernel version 1 successfully pushed.  Please check progress at https://www.kaggle.com/code/{metadata['id']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kaggle", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--version", action="version", version=f"Kaggle API {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config").add_subparsers(dest="action", required=True)
    config.add_parser("view")
    data = commands.add_parser("datasets").add_subparsers(dest="action", required=True)
    data.add_parser("status").add_argument("handle")
    for action in ("create", "version"):
        command = data.add_parser(action)
        command.add_argument("-p", "--path")
        command.add_argument("-r", "--dir-mode", choices=["skip", "zip", "tar"], default="skip")
        command.add_argument("-q", "--quiet", action="store_true")
        if action == "version":
            command.add_argument("-m", "--message", required=True)
    push = commands.add_parser("kernels").add_subparsers(dest="action", required=True).add_parser("push")
    push.add_argument("-p", "--path")
    push.add_argument("--accelerator", dest="acc")
    args = parser.parse_args(argv)
    server = Path(os.environ["KAGGLE_STANDIN_SERVER"])
    server.mkdir(parents=True, exist_ok=True)
    with open(server / "calls.jsonl", "a") as calls:
        calls.write(json.dumps({"argv": sys.argv[1:] if argv is None else argv, "cwd": os.getcwd()}) + "\n")
    if args.command == "config":
        user = os.environ.get("KAGGLE_STANDIN_USER")  # None: as the CLI says it for a user it cannot tell
        print(f"Configuration values from {Path.home() / '.kaggle'}\n- username: {user}")
        return 0
    if args.command == "datasets":
        return datasets(args, server)
    return kernels_push(args, server)


if __name__ == "__main__":
    sys.exit(main())
