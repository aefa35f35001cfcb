"""Push the Kaggle notebook to a stand-in of Kaggle and run it there as Kaggle would: on Kaggle's Python, offline,
its inputs mounted where Kaggle mounts them, with a real Jupyter kernel.

    make kaggle-sim        # builds Kaggle's Python and a wheelhouse for it, then runs this twice:
    python kaggle/simulate.py image --out build/kaggle-sim/python        # Kaggle's Python: 3.12, no ensurepip
    python kaggle/simulate.py python --version 3.12      # the Python image copies (make kaggle-wheels resolves with it)
    python kaggle/simulate.py run --wheels build/kaggle-sim/wheels --python build/kaggle-sim/python/bin/python3.12

`image`: a copy of this machine's Python 3.12 (pyenv's) without `ensurepip`, as Kaggle's image has it (Debian's
Python without python3-venv: `python -m venv` fails there), with ipykernel for the notebook's kernel.

`run`: `kaggle/push.py` pushes the wheelhouse and the model through the stand-in CLI (kaggle/standin.py: what
the CLI uploads of each folder, folders zipped and unpacked as the service does), then the pushed notebook
runs on --python against the pushed kernel's inputs, mounted by kaggle/standin.py's `mount`:
- `--layout 2026`: input/competitions/arc-prize-2026-arc-agi-2/, input/datasets/OWNER/arc-submit-wheels/, and
  the embedded model as a Kaggle Model at input/models/OWNER/smollm2-135m/transformers/default/1/ (attached
  with MODEL_SOURCES), its settings (CARRIED) carried by the notebook (`make kaggle-push SET=...`);
- `--layout 2025` (with `--adapter`): input/arc-prize-2025/, input/arc-submit-wheels/, and a model dataset
  holding a LoRA adapter trained here by `python -m arc_submit train` in a few steps with its base beside it
  (adapter/ and base/, uploaded as folders), made by kaggle/model.py with the settings in its arc-submit.toml.
The competition's folder holds the 2 smallest ARC-AGI-2 eval tasks as the test file (and the other files from
the embedded datasets). The notebook fills a fresh virtual environment from the wheelhouse with `pip
--no-index`, runs the pipeline, and validates; then this script validates working/submission.json once more,
from outside, and checks that every task ran, the model found and the settings used (config.toml). `--venv`
puts that environment where a second run finds it: `make kaggle-sim`'s second run must keep it (the notebook
says so), as a notebook run again in an interactive Kaggle session does.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OWNER = "sim-owner"
COMPETITIONS = {"2026": "arc-prize-2026-arc-agi-2", "2025": "arc-prize-2025"}
KAGGLE_MODEL = f"{OWNER}/smollm2-135m/transformers/default/1"  # OWNER/MODEL/FRAMEWORK/VARIATION/VERSION
# Settings carried to the run (by the notebook in 2026, by the adapter's model dataset in 2025); the run's
# config.toml must show them.
CARRIED = {"sampling.augmentations": "3", "voting.scoring_views": "3"}


# ---------------------------------------------------------------------------------------------------------------
# Kaggle's Python.

def base_python(version: str) -> Path:
    """This machine's CPython VERSION (pyenv's first: its shims run only the global version)."""
    found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    found += [path for path in (f"/usr/local/bin/python{version}", f"/usr/bin/python{version}") if os.path.exists(path)]
    if not found:
        raise SystemExit(f"kaggle-sim: no Python {version} on this machine (pyenv's or /usr/bin's); "
                         "give one with KAGGLE_SIM_PYTHON=/path/to/python")
    return Path(found[-1] if "pyenv" in found[0] else found[0])


def make_image(version: str, out: Path) -> None:
    """OUT: a copy of this machine's Python VERSION without ensurepip, with ipykernel (from PyPI)."""
    base = base_python(version)
    prefix = subprocess.run([base, "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True,
                            check=True).stdout.strip()
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(prefix, out, symlinks=True)
    shutil.rmtree(out / "lib" / f"python{version}" / "ensurepip")
    python = out / "bin" / f"python{version}"
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--root-user-action=ignore",
                    "ipykernel"], check=True)
    with tempfile.TemporaryDirectory() as scratch:
        venv = subprocess.run([python, "-m", "venv", scratch], capture_output=True, text=True)
    if venv.returncode == 0:
        raise SystemExit(f"kaggle-sim: {python} still makes a venv with pip: it is kinder than Kaggle's")
    print(f"{python}: Python {version} without ensurepip (`python -m venv` fails, as on Kaggle), with ipykernel")


# ---------------------------------------------------------------------------------------------------------------
# Kaggle's side: the competition, the push, the mounts.

def write_competition(folder: Path) -> None:
    from arc_submit.data.submission import build, fallback_attempts
    from arc_submit.data.tasks import kaggle_layout, load_dataset, smallest

    folder.mkdir(parents=True)
    evaluation, training = load_dataset("arc-agi-2-eval"), load_dataset("arc-agi-2-train")
    test = smallest(evaluation, 2)
    for name, tasks in (("evaluation", evaluation), ("training", training)):
        challenges, solutions = kaggle_layout(tasks)
        (folder / f"arc-agi_{name}_challenges.json").write_text(json.dumps(challenges))
        (folder / f"arc-agi_{name}_solutions.json").write_text(json.dumps(solutions))
    (folder / "arc-agi_test_challenges.json").write_text(json.dumps(kaggle_layout(test)[0]))
    (folder / "sample_submission.json").write_text(json.dumps(build({t.task_id: fallback_attempts(t) for t in test})))


def build_adapter_dataset(train_dir: Path, out: Path) -> None:
    """A LoRA adapter of the embedded model trained 2 steps on 2 small tasks, then the model dataset that
    `make kaggle-model MODEL=<checkpoint> SET=...` makes of it."""
    run = lambda *command: subprocess.run([sys.executable, *command], check=True, capture_output=True, text=True)  # noqa: E731
    run("-m", "arc_submit", "train", "--dataset", "arc-agi-1-train", "--smallest", "2", "--out", str(train_dir),
        "--config", "smoke", "--set", "train.steps=2", "--set", "train.val_tasks=0", "--set", "train.save_every=2",
        "--quiet")
    settings = [part for key, value in CARRIED.items() for part in ("--set", f"{key}={value}")]
    print(run(str(HERE / "model.py"), str(train_dir / "checkpoint-2"), str(out), *settings).stdout, end="")


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source.resolve(), target)


def push_to_standin(root: Path, wheels: Path, layout: str, adapter: bool) -> Path:
    """Kaggle's side for LAYOUT: the competition and (2026) a Kaggle Model on the stand-in service, then
    `kaggle/push.py` through the stand-in CLI; the mounted input/ and the pushed notebook."""
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve

    server = root / "server"
    write_competition(server / "competitions" / COMPETITIONS[layout])
    command = [sys.executable, str(HERE / "push.py"), "--wheels", str(wheels), "--competition", COMPETITIONS[layout],
               "--out", str(root / "push"), "--poll", "0", "--accelerator", "NvidiaL4",
               "--python", json.loads((wheels / "wheelhouse.json").read_text())["python"]]  # Kaggle's, here
    if adapter:
        build_adapter_dataset(root / "tmp" / "train", root / "model-dataset")
        command += ["--model", str(root / "model-dataset")]
    else:
        shutil.copytree(resolve(EMBEDDED_ALIAS).base_dir, server / "models" / KAGGLE_MODEL, copy_function=os.link)
        command += ["--model", str(root / "no-model-dataset"), "--model-sources", KAGGLE_MODEL]
        command += [part for key, value in CARRIED.items() for part in ("--set", f"{key}={value}")]
    (root / "bin").mkdir()
    (root / "bin" / "kaggle").write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'standin.py'} \"$@\"\n")
    (root / "bin" / "kaggle").chmod(0o755)
    env = {**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}", "KAGGLE_STANDIN_SERVER": str(server),
           "KAGGLE_USERNAME": OWNER, "KAGGLE_API_TOKEN": "stand-in"}
    subprocess.run(command, env=env, check=True)
    return mount(server, f"{OWNER}/arc-submit", root / "input", layout)


def mount(server: Path, kernel: str, input_dir: Path, layout: str) -> Path:
    """INPUT_DIR laid out as Kaggle mounts the pushed KERNEL's sources (kept by kaggle/standin.py in SERVER): in
    2026 input/competitions/SLUG/, input/datasets/OWNER/SLUG/ and input/models/OWNER/MODEL/FRAMEWORK/VARIATION/
    VERSION/; in 2025 datasets at input/SLUG/. Returns the pushed notebook."""
    stored = server / "kernels" / kernel
    metadata = json.loads((stored / "kernel-metadata.json").read_text())
    new = layout == "2026"
    places = [(server / "competitions" / slug, input_dir / "competitions" / slug if new else input_dir / slug)
              for slug in metadata["competition_sources"]]
    places += [(server / "datasets" / handle,
                input_dir / "datasets" / handle if new else input_dir / handle.split("/")[1])
               for handle in metadata["dataset_sources"]]
    places += [(server / "models" / handle, input_dir / "models" / handle) for handle in metadata["model_sources"]]
    for source, target in places:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                link(path, target / path.relative_to(source))
    return stored / metadata["code_file"]


# ---------------------------------------------------------------------------------------------------------------
# The notebook's run, and what must hold after it.

def execute(notebook_path: Path, root: Path, python: Path, preset: str, budget: int, venv: Path) -> str:
    """Run the notebook with a kernel on PYTHON; its printed output, which this also prints."""
    import nbformat
    from nbclient import NotebookClient

    specs = root / "jupyter" / "kernels" / "kaggle"
    specs.mkdir(parents=True)
    (specs / "kernel.json").write_text(json.dumps({"argv": [str(python.absolute()), "-m", "ipykernel_launcher", "-f",
                                                            "{connection_file}"],
                                                   "display_name": "Kaggle's Python", "language": "python"}))
    os.environ.update(ARC_SUBMIT_KAGGLE_ROOT=str(root), ARC_SUBMIT_PRESET=preset, ARC_SUBMIT_VENV=str(venv),
                      ARC_SUBMIT_TIME_BUDGET=str(budget), JUPYTER_PATH=str(root / "jupyter"))
    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(notebook, timeout=3000, kernel_name="kaggle",
                            resources={"metadata": {"path": str(root / "working")}})
    printed = []
    try:
        client.execute()
    finally:
        nbformat.write(notebook, root / "working" / "executed.ipynb")
        for cell in notebook.cells:
            for output in cell.get("outputs", []):
                text = output.get("text") or "".join(output.get("traceback", []))
                printed.append(text if text.endswith("\n") else text + "\n")
                print(printed[-1], end="")
    return "".join(printed)


def record_problems(run_dir: Path) -> list[str]:
    """A valid file is not enough: every task must have run the whole pipeline and sampled answers."""
    records = [json.loads(path.read_text()) for path in sorted((run_dir / "tasks").glob("*.json"))]
    if len(records) != 2:
        return [f"{len(records)} task records in {run_dir}, expected 2"]
    return [f"task {r['task_id']}: mode {r['mode']}, reasons {r['reasons']}" for r in records
            if r["mode"] != "full" or not all(r["candidates"])]


def model_problems(root: Path, run_dir: Path, printed: str, adapter: bool) -> list[str]:
    """The run used the pushed model (run.log names the adapter, or the Kaggle Model's folder) and the
    carried settings (config.toml), which came from where they were carried."""
    import tomllib

    model = (root / "input" / "arc-submit-model" / "adapter") if adapter else (root / "input" / "models" / KAGGLE_MODEL)
    log = (run_dir / "run.log").read_text() if (run_dir / "run.log").exists() else ""
    found = [line.split(" (also found: ")[0] for line in printed.splitlines() if line.startswith("model: ")]
    problems = [] if f"model: {model}" in found[:1] else [f"the notebook did not find the model at {model}"]
    if adapter and f"adapter {model}" not in log:
        problems.append(f"run.log does not say the adapter {model} was loaded")
    source = "the model's settings" if adapter else "the notebook's settings"
    if f"\n{source}, laid over preset" not in printed:
        problems.append(f"the notebook did not say it used {source}")
    config = tomllib.loads((run_dir / "config.toml").read_text()) if (run_dir / "config.toml").exists() else {}
    for key, value in CARRIED.items():
        section, field = key.split(".")
        used = config.get(section, {}).get(field)
        if str(used) != value:
            problems.append(f"config.toml has {key} = {used!r}, not the carried {value}")
    return problems


def simulate(args: argparse.Namespace) -> int:
    start = time.time()
    root = Path(tempfile.mkdtemp(prefix="tree-", dir=args.wheels.resolve().parent))  # beside the wheels: hard links
    try:
        notebook = push_to_standin(root, args.wheels, args.layout, args.adapter)
        (root / "working").mkdir()
        venv = (args.venv or root / "tmp" / "arc-submit-venv").resolve()
        installed_before = (venv / "arc-submit-wheelhouse.json").is_file()  # the notebook's STAMP
        try:
            printed = execute(notebook, root, args.python, args.preset, args.time_budget, venv)
        except Exception as error:  # nbclient's CellExecutionError, or the kernel dying: said, and the run fails
            print(f"kaggle-sim: FAILED: the notebook stopped: {str(error).strip().splitlines()[-1]} ({root})")
            return 1
        test_file = root / "input" / ("competitions" if args.layout == "2026" else "") / COMPETITIONS[args.layout] \
            / "arc-agi_test_challenges.json"
        check = subprocess.run([sys.executable, "-m", "arc_submit", "validate", "--challenges", str(test_file),
                                "--submission", str(root / "working" / "submission.json")])
        run_dir = root / "working" / "arc-submit-run"
        problems = record_problems(run_dir) + model_problems(root, run_dir, printed, args.adapter)
        expected = "kept" if installed_before else "installed"
        if f"\n{expected} the " not in f"\n{printed}":
            problems.append(f"the notebook did not say it {expected} the stack in {venv}")
        for problem in problems:
            print(f"kaggle-sim: {problem}")
        passed = check.returncode == 0 and not problems
        model = "an adapter dataset with its settings" if args.adapter else "a Kaggle Model, settings in the notebook"
        print(f"kaggle-sim ({args.layout} layout, {model}, {args.python}): {'passed' if passed else 'FAILED'} in "
              f"{time.time() - start:.0f} s ({root})")
        return 0 if passed else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="Kaggle's Python: this machine's, without ensurepip, with ipykernel")
    image.add_argument("--version", default="3.12")
    image.add_argument("--out", type=Path, required=True)
    python = commands.add_parser("python", help="print the path of this machine's Python VERSION, which image copies")
    python.add_argument("--version", default="3.12")
    run = commands.add_parser("run", help="push to the stand-in, mount as Kaggle does, run the notebook")
    run.add_argument("--wheels", type=Path, required=True, help="a wheelhouse with wheelhouse.json")
    run.add_argument("--python", type=Path, required=True, help="the Python the notebook's kernel runs on")
    run.add_argument("--preset", default="smoke", help="the preset the notebook runs (default smoke)")
    run.add_argument("--time-budget", type=int, default=1200)
    run.add_argument("--layout", choices=list(COMPETITIONS), default="2026",
                     help="where Kaggle mounts the inputs: in 2026 (with a Kaggle Model) or in 2025 (datasets only)")
    run.add_argument("--adapter", action="store_true",
                     help="the model dataset is a trained LoRA adapter with its base and carried settings")
    run.add_argument("--keep", action="store_true", help="keep the simulated tree")
    run.add_argument("--venv", type=Path,
                     help="the notebook's virtual environment (default: a fresh one in the tree); a second run "
                          "given the same one and the same wheelhouse must keep it, as an interactive session does")
    args = parser.parse_args()
    if args.command == "image":
        make_image(args.version, args.out)
        return 0
    if args.command == "python":
        print(base_python(args.version))
        return 0
    return simulate(args)


if __name__ == "__main__":
    sys.exit(main())
