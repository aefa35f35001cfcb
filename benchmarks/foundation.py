"""Foundation benchmark: how long the grid-level work takes on ARC-AGI-1 eval (400 tasks).

    make bench        # or: .venv/bin/python benchmarks/foundation.py

Reports wall seconds for loading + validating the tasks, encoding + decoding every grid with each
encoder, and the `validate` and `score` commands on a 400-task submission, interpreter start included.
The last line of stdout is a JSON object with the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.submission import build
from arc_submit.data.tasks import kaggle_layout, load_dataset, load_tasks
from arc_submit.files import write_json

SPECS = [DEFAULT_ENCODER, "MinimalGridEncoder()", "ReplaceNumberEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))"]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def command_seconds(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "arc_submit", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def encode_decode_all(spec: str, grids: list) -> None:
    encoder = create(spec)
    for grid in grids:
        assert encoder.decode(encoder.encode(grid)) == grid


def main() -> None:
    tasks = load_dataset("arc-agi-1-eval")
    grids = [g for t in tasks for p in [*t.train, *t.test] for g in (p.input, p.output)]
    results = {"tasks": len(tasks), "grids": len(grids)}
    with tempfile.TemporaryDirectory() as folder:
        challenges, solutions = kaggle_layout(tasks)
        paths = {name: Path(folder) / f"{name}.json" for name in ("challenges", "solutions", "submission")}
        write_json(paths["challenges"], challenges)
        write_json(paths["solutions"], solutions)
        write_json(paths["submission"], build({t.task_id: [[p.output, p.input] for p in t.test] for t in tasks}))
        results["load_validate_s"] = timed(lambda: load_tasks(paths["challenges"], paths["solutions"]))
        for spec in SPECS:
            results[f"encode_decode_s {spec}"] = timed(lambda spec=spec: encode_decode_all(spec, grids))
        results["command_validate_s"] = command_seconds(
            "validate", "--challenges", str(paths["challenges"]), "--submission", str(paths["submission"]))
        results["command_score_s"] = command_seconds(
            "score", "--submission", str(paths["submission"]), "--solutions", str(paths["solutions"]))
        results["command_python_start_s"] = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
    for name, value in results.items():
        print(f"{name:80s} {value:.3f}" if isinstance(value, float) else f"{name:80s} {value}")
    print(json.dumps({name: round(v, 4) if isinstance(v, float) else v for name, v in results.items()}))


if __name__ == "__main__":
    main()
