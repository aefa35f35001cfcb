"""Run the Kaggle notebook in a simulated Kaggle tree, with a real Jupyter kernel, offline.

    make kaggle-sim        # builds the CPU wheelhouse, then: python kaggle/simulate.py --wheels build/kaggle-sim/wheels

The tree: the competition's folder where that year's competition mounts it (`--layout 2026`:
input/competitions/arc-prize-2026-arc-agi-2/, `--layout 2025`: input/arc-prize-2025/; the 2 smallest
ARC-AGI-2 eval tasks as the test file, the other competition files from the embedded datasets), input/arc-submit-wheels/ (the CPU twin of the Kaggle pins, a wheelhouse for this machine),
input/smollm2-135m/ (the embedded model, converted), working/. The notebook fills a fresh virtual
environment from the wheelhouse with `pip --no-index`, runs the pipeline, and validates; then this
script validates working/submission.json once more, from outside. `--venv` puts that environment where
a second run finds it: `make kaggle-sim`'s second run must keep it (the notebook says so), as a notebook
run again in an interactive Kaggle session does.

`--adapter`: the model is instead a LoRA adapter trained here by `python -m arc_submit train` in a few
steps, made into a model dataset by kaggle/model.py (input/arc-submit-model/: adapter/, base/) with
settings carried in its arc-submit.toml (CARRIED); the run must load the adapter (its summary and run.log
say so) and its config.toml must hold the carried settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK = Path(__file__).with_name("arc-submit.ipynb")
LAYOUTS = {"2026": "competitions/arc-prize-2026-arc-agi-2", "2025": "arc-prize-2025"}  # under input/


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


# Settings the adapter's model dataset carries (`make kaggle-model SET=...`); the run's config.toml must show them.
CARRIED = {"sampling.augmentations": "3", "voting.views": "3"}


def build_tree(root: Path, wheels: Path, layout: str, adapter: bool) -> None:
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve

    write_competition(root / "input" / LAYOUTS[layout])
    os.symlink(wheels.resolve(), root / "input" / "arc-submit-wheels")  # read-only there too, and GBs large
    if adapter:
        build_adapter_dataset(root / "tmp" / "train", root / "input" / "arc-submit-model")
    else:
        os.symlink(resolve(EMBEDDED_ALIAS).base_dir, root / "input" / "smollm2-135m")
    (root / "working").mkdir()


def build_adapter_dataset(train_dir: Path, out: Path) -> None:
    """A LoRA adapter of the embedded model trained 2 steps on 2 small tasks, then the model dataset that
    `make kaggle-model MODEL=<checkpoint> SET=...` makes of it."""
    run = lambda *command: subprocess.run([sys.executable, *command], check=True, capture_output=True, text=True)  # noqa: E731
    run("-m", "arc_submit", "train", "--dataset", "arc-agi-1-train", "--smallest", "2", "--out", str(train_dir),
        "--config", "smoke", "--set", "train.steps=2", "--set", "train.val_tasks=0", "--set", "train.save_every=2",
        "--quiet")
    checkpoint = train_dir / "checkpoint-2"
    settings = [part for key, value in CARRIED.items() for part in ("--set", f"{key}={value}")]
    print(run(str(Path(__file__).with_name("model.py")), str(checkpoint), str(out), *settings).stdout, end="")


def execute(root: Path, preset: str, budget: int, venv: Path) -> str:
    """Run the notebook; its printed output, which this also prints."""
    import nbformat
    from nbclient import NotebookClient

    os.environ.update(ARC_SUBMIT_KAGGLE_ROOT=str(root), ARC_SUBMIT_PRESET=preset, ARC_SUBMIT_VENV=str(venv),
                      ARC_SUBMIT_TIME_BUDGET=str(budget))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=3000, kernel_name="python3",
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


def adapter_problems(root: Path, run_dir: Path) -> list[str]:
    """With --adapter: the run loaded the adapter (run.log names it) and used the carried settings."""
    import tomllib

    adapter = root / "input" / "arc-submit-model" / "adapter"
    log = (run_dir / "run.log").read_text() if (run_dir / "run.log").exists() else ""
    problems = [] if f"adapter {adapter}" in log else [f"run.log does not say the adapter {adapter} was loaded"]
    config = tomllib.loads((run_dir / "config.toml").read_text())
    for key, value in CARRIED.items():
        section, field = key.split(".")
        if str(config[section][field]) != value:
            problems.append(f"config.toml has {key} = {config[section][field]!r}, not the carried {value}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the Kaggle notebook in a simulated Kaggle tree.")
    parser.add_argument("--wheels", type=Path, required=True, help="a wheelhouse with wheelhouse.json")
    parser.add_argument("--preset", default="smoke", help="the preset the notebook runs (default smoke)")
    parser.add_argument("--time-budget", type=int, default=1200)
    parser.add_argument("--layout", choices=list(LAYOUTS), default="2026",
                        help="where the competition's files are mounted: ARC Prize 2026's place or 2025's")
    parser.add_argument("--adapter", action="store_true",
                        help="the model dataset is a trained LoRA adapter with its base and carried settings")
    parser.add_argument("--keep", action="store_true", help="keep the simulated tree")
    parser.add_argument("--venv", type=Path,
                        help="the notebook's virtual environment (default: a fresh one in the tree); a second run "
                             "given the same one and the same wheelhouse must keep it, as an interactive session does")
    args = parser.parse_args()
    start = time.time()
    root = Path(tempfile.mkdtemp(prefix="kaggle-sim-"))
    try:
        build_tree(root, args.wheels, args.layout, args.adapter)
        venv = (args.venv or root / "tmp" / "arc-submit-venv").resolve()
        installed_before = (venv / "arc-submit-wheelhouse.json").is_file()  # the notebook's STAMP
        try:
            printed = execute(root, args.preset, args.time_budget, venv)
        except Exception as error:  # nbclient's CellExecutionError, or the kernel dying
            print(f"kaggle-sim: FAILED: the notebook stopped: {str(error).strip().splitlines()[-1]} ({root})")
            return 1
        test_file = root / "input" / LAYOUTS[args.layout] / "arc-agi_test_challenges.json"
        check = subprocess.run([sys.executable, "-m", "arc_submit", "validate", "--challenges", str(test_file),
                                "--submission", str(root / "working" / "submission.json")])
        problems = record_problems(root / "working" / "arc-submit-run")
        expected = "kept" if installed_before else "installed"
        if f"\n{expected} the " not in f"\n{printed}":
            problems.append(f"the notebook did not say it {expected} the stack in {venv}")
        if args.adapter:
            problems += adapter_problems(root, root / "working" / "arc-submit-run")
        for problem in problems:
            print(f"kaggle-sim: {problem}")
        passed = check.returncode == 0 and not problems
        model = "an adapter with carried settings" if args.adapter else "a model folder"
        print(f"kaggle-sim ({args.layout} layout, {model}): {'passed' if passed else 'FAILED'} in {time.time() - start:.0f} s "
              f"({root})")
        return 0 if passed else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
