"""The train command: a seeded training killed after a checkpoint and resumed ends with the very
weights of an uninterrupted one; its checkpoints load in `evaluate`; the validation loss falls; the
TensorBoard event files hold the logged scalars (read back with tensorboard's own reader)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.cli import run_cli

SETTINGS = ["--set", "train.steps=6", "--set", "train.save_every=3", "--set", "train.eval_every=2", "--set",
            "train.log_every=2", "--set", "train.lora_rank=4", "--set", "train.lora_alpha=8.0", "--set",
            "train.eval_examples=2", "--set", "train.learning_rate=0.005", "--set", "run.threads=1"]


@pytest.fixture(scope="module")
def trainings(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")

    def train(name: str, *extra: str, faults: str = ""):
        return run_cli("train", "--dataset", "arc-agi-1-train", "--smallest", "6", "--model", str(tiny_model_dir),
                       "--out", str(root / name), "--seed", "3", "--quiet", *SETTINGS, *extra,
                       env={"ARC_SUBMIT_FAULTS": faults})

    whole = train("whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    return train, root, json.loads(whole.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_training_killed_after_a_checkpoint_resumes_to_the_same_weights(trainings):
    train, root, _ = trainings
    killed = train("killed", faults="train:5:kill")
    assert killed.returncode == -9 and (root / "killed" / "checkpoint-3").is_dir()
    assert not (root / "killed" / "checkpoint-6").exists()
    resumed = train("killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in (root / "killed" / "run.log").read_text()
    for step in (3, 6):
        a = load_file(str(root / "whole" / f"checkpoint-{step}" / "adapter_model.safetensors"))
        b = load_file(str(root / "killed" / f"checkpoint-{step}" / "adapter_model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = [json.loads((root / name / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
               for name in ("whole", "killed")]
    assert history[0] == history[1] and [entry["step"] for entry in history[0]] == [2, 4, 6]


class RunsCode:
    """A pickled object that runs a command when loaded: what a tampered checkpoint could hold."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.slow
def test_a_checkpoint_holding_more_than_data_is_refused_in_one_line_and_runs_nothing(trainings, tmp_path):
    import shutil

    train, root, _ = trainings
    shutil.copytree(root / "whole", root / "tampered")
    shutil.rmtree(root / "tampered" / "checkpoint-6")
    marker = tmp_path / "ran"
    state = root / "tampered" / "checkpoint-3" / "scheduler.pt"
    torch.save({**torch.load(state, weights_only=True), "extra": RunsCode(marker)}, state)
    refused = train("tampered")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "scheduler.pt: holds more than tensors and plain values" in lines[0] and "posix.system" in lines[0]
    assert not marker.exists()


def test_checkpoints_get_the_umask_permissions_like_every_other_file(trainings):
    import os
    import stat

    _, root, _ = trainings
    mask = os.umask(0)
    os.umask(mask)
    checkpoint = root / "whole" / "checkpoint-6"
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    assert stat.S_IMODE((checkpoint / "trainer_state.json").stat().st_mode) == 0o666 & ~mask


def test_other_settings_on_the_same_folder_are_refused(trainings):
    train, _, _ = trainings
    refused = train("whole", "--set", "train.lora_rank=8")
    assert refused.returncode == 2 and "train.lora_rank: 4 -> 8" in refused.stderr and "Traceback" not in refused.stderr


def test_the_validation_loss_falls_and_tensorboard_holds_the_scalars(trainings):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, root, summary = trainings
    assert summary["validation_tasks"] == 1 and summary["train_tasks"] == 5
    assert summary["val_loss"] < summary["first_val_loss"]
    events = EventAccumulator(str(root / "whole" / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [event.step for event in events.Scalars("validation/loss")] == [2, 4, 6]
    assert events.Scalars("validation/loss")[-1].value == pytest.approx(summary["val_loss"], rel=1e-5)


@pytest.mark.slow
def test_checkpoints_load_in_evaluate(trainings, tiny_model_dir, tmp_path):
    _, root, _ = trainings
    config = tmp_path / "tiny.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n[ttft]\nsteps = 0\n[sampling]\nbackend = "transformers"\n'
                      'augmentations = 1\nmax_new_tokens = 8\n')
    result = run_cli("evaluate", "--config", str(config), "--dataset", "arc-agi-1-eval", "--smallest", "1",
                     "--model", str(root / "whole" / "checkpoint-3"), "--model", str(root / "whole" / "checkpoint-6"),
                     "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [row["step"] for row in rows] == [3, 6] and all(row["tasks"] == 1 for row in rows)
    assert all(row["training_loss"] > 0 and row["training_eval_loss"] > 0 for row in rows)


@pytest.mark.slow
def test_full_weights_training_writes_a_model_folder(tiny_model_dir, tmp_path):
    result = run_cli("train", "--dataset", "arc-agi-1-train", "--smallest", "3", "--model", str(tiny_model_dir),
                     "--out", str(tmp_path / "full"), "--quiet", "--set", "train.method=\"full\"", "--set",
                     "train.steps=2", "--set", "train.val_tasks=0")
    assert result.returncode == 0, result.stderr[-2000:]
    from arc_submit.model.resolve import resolve

    resolved = resolve(str(tmp_path / "full" / "checkpoint-2"))
    assert resolved.adapter_dir is None and (resolved.base_dir / "model.safetensors").is_file()


@pytest.mark.slow
def test_two_checkpoints_over_two_seeds_in_one_command(trainings, tiny_model_dir, tmp_path):
    """evaluate as a model x seed grid: every pair in its own run dir (two side by side), the table, the
    spread per model, the paired per-task table and the plot with both models."""
    _, root, _ = trainings
    config = tmp_path / "tiny.toml"
    config.write_text(f'[model]\nname = "{tiny_model_dir}"\n[ttft]\nsteps = 1\nlora_rank = 4\nlora_alpha = 8.0\n'
                      '[sampling]\nbackend = "transformers"\naugmentations = 1\nmax_new_tokens = 8\n[run]\nthreads = 1\n')
    result = run_cli("evaluate", "--config", str(config), "--dataset", "arc-agi-1-eval", "--smallest", "2",
                     "--model", str(root / "whole" / "checkpoint-3"), "--model", str(root / "whole" / "checkpoint-6"),
                     "--seeds", "0", "1", "--workers", "2", "--out", str(tmp_path / "grid"))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "grid" / "metrics.json").read_text())
    assert [(row["label"], row["seed"]) for row in rows] == [("checkpoint-3", 0), ("checkpoint-3", 1),
                                                             ("checkpoint-6", 0), ("checkpoint-6", 1)]
    assert all(row["tasks"] == 2 and row["degraded"] == 0 for row in rows)
    assert sorted(p.name for p in (tmp_path / "grid").iterdir() if p.is_dir()) == \
        ["checkpoint-3-seed0", "checkpoint-3-seed1", "checkpoint-6-seed0", "checkpoint-6-seed1"]
    grid = json.loads((tmp_path / "grid" / "seeds.json").read_text())
    assert [row["run"] for row in grid["spread"]] == ["checkpoint-3 mean", "checkpoint-3 std", "checkpoint-6 mean",
                                                      "checkpoint-6 std"]
    [pair] = grid["paired"]
    assert (pair["a"], pair["b"], pair["seeds"]) == ("checkpoint-3", "checkpoint-6", [0, 1])
    assert sum(pair["totals"].values()) == 2 * 2  # every task under every seed, once
    assert "paired over seeds 0, 1: checkpoint-3 (A) vs checkpoint-6 (B)" in result.stdout
    assert (tmp_path / "grid" / "seeds.png").stat().st_size > 0


def test_paired_tasks_count_each_seed_once(tmp_path):
    from arc_submit.studies.evaluate import format_paired, paired_tasks

    def row(label, seed, solved):
        run_dir = tmp_path / f"{label}-{seed}"
        run_dir.mkdir()
        per_task = {task: {"score": 1.0 if task in solved else 0.0} for task in ("t1", "t2", "t3")}
        (run_dir / "metrics.json").write_text(json.dumps({"per_task": per_task}))
        return {"label": label, "seed": seed, "run_dir": str(run_dir)}

    a = [row("a", 0, {"t1", "t2"}), row("a", 1, {"t1"}), row("a", 2, {"t1"})]
    b = [row("b", 0, {"t2"}), row("b", 1, {"t2", "t1"})]  # seed 2 missing for b: not paired
    pair = paired_tasks(a, b, "a", "b")
    assert pair["seeds"] == [0, 1]
    assert pair["tasks"] == {"t1": {"a_only": 1, "b_only": 0, "both": 1, "neither": 0},
                             "t2": {"a_only": 0, "b_only": 1, "both": 1, "neither": 0},
                             "t3": {"a_only": 0, "b_only": 0, "both": 0, "neither": 2}}
    assert pair["totals"] == {"a_only": 1, "b_only": 1, "both": 2, "neither": 2}
    text = format_paired(pair)
    assert "t1" in text and "t2" in text and "t3" not in text  # tasks nobody solved are only counted
