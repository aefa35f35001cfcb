"""The repository root, and the command line run as a user runs it: `python -m arc_submit ...` in a fresh
interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m arc_submit ARGS` in a fresh interpreter, as a user runs it (`env`: extra variables)."""
    return subprocess.run(
        [sys.executable, "-m", "arc_submit", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=1200,
        env={**os.environ, **(env or {})},
    )


def export_eval(tmp_path):
    """ARC-AGI-2's eval tasks exported into `tmp_path` by `data export`: (challenges, solutions)."""
    result = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path / "challenges.json", tmp_path / "solutions.json"
