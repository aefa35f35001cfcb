"""The study command with a tiny model: two settings trained and each checkpoint evaluated, one table
(CSV and Markdown) and one page; a second call resumes without training again."""

from __future__ import annotations

import csv
import json

import pytest

from arc_submit.errors import UserError
from arc_submit.studies.study import parse_vary, settings_grid
from tests.helpers.cli import run_cli

# Around the model, not in it (tiny model, transformers sampler): the default stack's run covers it (pyproject.toml).
pytestmark = pytest.mark.machinery


def test_vary_splits_on_semicolons_and_makes_a_grid():
    axes = parse_vary(["prompt.encoder=GridShapeEncoder(MinimalGridEncoder());MinimalGridEncoder()",
                       "train.learning_rate=1e-4;2e-4"])
    grid = settings_grid(axes)
    assert len(grid) == 4 and grid[0].overrides == ("prompt.encoder=GridShapeEncoder(MinimalGridEncoder())",
                                                   "train.learning_rate=1e-4")
    assert len({setting.name for setting in grid}) == 4 and all("/" not in setting.name for setting in grid)
    with pytest.raises(UserError, match="expected SECTION.FIELD=VALUE1;VALUE2"):
        parse_vary(["learning_rate"])


@pytest.mark.slow
def test_a_two_setting_study_writes_the_table_and_the_page(tiny_model_dir, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n[ttft]\nsteps = 0\n[sampling]\nbackend = "transformers"\n'
                      'augmentations = 1\nmax_new_tokens = 8\n[train]\nsteps = 4\nsave_every = 2\neval_every = 2\n'
                      'log_every = 2\nlora_rank = 4\nlora_alpha = 8.0\neval_examples = 2\n[run]\nthreads = 1\n')
    flags = ["study", "--vary", "train.learning_rate=1e-3;1e-2", "--dataset", "arc-agi-1-train", "--smallest", "4",
             "--eval-dataset", "arc-agi-1-eval", "--eval-smallest", "1", "--config", str(config), "--out", str(tmp_path / "s")]
    result = run_cli(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])["rows"]
    assert [row["setting"] for row in rows] == ["train.learning_rate=1e-3", "train.learning_rate=1e-2"]
    assert all(row["val_loss"] > 0 and row["train_loss"] > 0 and 0 <= row["score"] <= 1 for row in rows)
    with open(tmp_path / "s" / "study.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [row["setting"] for row in table] == [row["setting"] for row in rows]
    markdown = (tmp_path / "s" / "study.md").read_text()
    assert markdown.startswith("| setting | train_loss | val_loss | accuracy | correct_pixels | correct_size | pass_n |")
    page = (tmp_path / "s" / "study.html").read_text()
    assert "data:image/png;base64," in page and "train.learning_rate=1e-2" in page
    assert sorted(p.name for p in (tmp_path / "s" / "01-1e-3" / "evaluation").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    again = run_cli(*flags)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["rows"] == rows
    assert "0 to run" in again.stderr  # the evaluations were done: nothing ran again
