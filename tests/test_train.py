"""The train command: a seeded training killed after a checkpoint and resumed ends with the very
weights of an uninterrupted one; its checkpoints load in `evaluate`; the validation loss falls; the
TensorBoard event files hold the logged scalars (read back with tensorboard's own reader)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_cli

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


def test_full_weights_training_writes_a_model_folder(tiny_model_dir, tmp_path):
    result = run_cli("train", "--dataset", "arc-agi-1-train", "--smallest", "3", "--model", str(tiny_model_dir),
                     "--out", str(tmp_path / "full"), "--quiet", "--set", "train.method=\"full\"", "--set",
                     "train.steps=2", "--set", "train.val_tasks=0")
    assert result.returncode == 0, result.stderr[-2000:]
    from arc_submit.model.resolve import resolve

    resolved = resolve(str(tmp_path / "full" / "checkpoint-2"))
    assert resolved.adapter_dir is None and (resolved.base_dir / "model.safetensors").is_file()
