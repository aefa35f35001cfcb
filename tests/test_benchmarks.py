"""The benchmarks' committed results still print README's tables byte for byte (no model is loaded when
the results are complete), so a change to a benchmark's code cannot quietly change what README claims."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_selection_benchmark_prints_readme_tables_from_committed_results(tmp_path):
    shutil.copy(ROOT / "benchmarks/results/selection-cpu-seed0.json", tmp_path / "results.json")
    result = subprocess.run([sys.executable, "benchmarks/selection.py", "--tasks", "20", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    readme = (ROOT / "README.md").read_text()
    tables = [block.split("\n\n", 1)[1] for block in result.stdout.strip().split("\n\n**")]
    assert len(tables) == 2
    for table in tables:
        assert table.count("\n") == 6 and table in readme
