"""The benchmarks' committed results still print the tables of benchmarks/RESULTS.md byte for byte (no model is
loaded when the results are complete), so a change to a benchmark's code cannot quietly change what the results
page claims."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/RESULTS.md"


def test_selection_benchmark_prints_the_results_pages_tables_from_committed_results(tmp_path):
    shutil.copy(ROOT / "benchmarks/results/selection-cpu-seed0.json", tmp_path / "results.json")
    result = subprocess.run([sys.executable, "benchmarks/selection.py", "--tasks", "20", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    page = RESULTS.read_text()
    tables = [block.split("\n\n", 1)[1] for block in result.stdout.strip().split("\n\n**")]
    assert len(tables) == 2
    for table in tables:
        assert table.count("\n") == 6 and table in page


def test_the_schedule_simulation_spends_the_12_hours_and_cuts_nothing_that_fits():
    """benchmarks/schedule.py: 240 ARC-AGI-2 tasks on 4 simulated L4 workers, planned by the run's own queue
    and budgets on a fake clock. When the full work fits, no task is cut; when it does not, at most 5% of
    the time is left unused at the end, and the run never goes over."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import schedule
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    load = schedule.workload(240, 4)
    fits, binds = load.run(0.9), load.run(1.5)
    assert fits["not_full"] == 0 and fits["steps"] == 200 * 240
    assert binds["over_s"] == 0 and 0 < binds["unused_share"] <= 0.05
    assert binds["fallback"] == 0 and binds["steps"] < 200 * 240


def test_scorers_comparison_prints_the_results_pages_table_from_committed_results(tmp_path):
    shutil.copy(ROOT / "benchmarks/results/scorers-cpu-seed0.json", tmp_path / "results.json")
    result = subprocess.run([sys.executable, "benchmarks/selection.py", "--tasks", "4", "--local", "4", "--scorers",
                             "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    table = result.stdout.strip().split("\n\n")[-1]
    assert table.startswith("| candidates | sampling s") and table.count("\n") == 3
    assert table in RESULTS.read_text()


def test_the_schedule_simulation_prints_the_results_pages_table():
    """`make bench-schedule` runs on a fake clock, so its table is the same on every machine: the one on the page."""
    result = subprocess.run([sys.executable, "benchmarks/schedule.py"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=True)
    table = "\n".join(line for line in result.stdout.splitlines() if line.startswith("|"))
    assert table.startswith("| load | unused at the end") and table.count("\n") == 7
    assert table in RESULTS.read_text()
