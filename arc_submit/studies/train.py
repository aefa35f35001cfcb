"""Fine-tuning on ARC tasks, the research log's way: the very examples, augmentations, prompt format and
schedules of TTFT (arc_submit.model.training serves both), a validation loss on held-out tasks, a
`checkpoint-N/` every k steps (an adapter or all weights, the tokenizer, and transformers'
`trainer_state.json`, so `evaluate` reads them), resume after a kill to the very same weights, and the
metrics as TensorBoard event files (and Weights & Biases, offline, when it is installed).

    python -m arc_submit train --dataset arc-agi-1-train --smallest 20 --out runs/train --set train.steps=200
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arc_submit.config import Config, to_toml
from arc_submit.data.tasks import Task
from arc_submit.errors import UserError
from arc_submit.faults import inject
from arc_submit.files import read_json, temporary_folder, write_json, write_text
from arc_submit.model.resolve import EMBEDDED_ALIAS, save_tokenizer

log = logging.getLogger("arc_submit")
CHECKPOINT = "checkpoint-{step}"
STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth")


def load_state(path: Path):
    """A checkpoint's training state (optimizer, schedule, random states), loaded as data only: tensors and
    plain values (`weights_only`), which is all `save` writes. Anything else is refused in one line: unpickling
    an object runs code, and a checkpoint may come from someone else."""
    import pickle

    import torch

    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        said = [line.strip() for line in str(error).splitlines() if "Unsupported global" in line or "GLOBAL" in line]
        raise UserError(f"{path}: holds more than tensors and plain values ({said[0] if said else 'not data only'}); "
                        "refused, since loading it could run code: resume from a checkpoint `train` wrote") from None


@dataclass(frozen=True)
class Split:
    train: list[Task]
    validation: list[Task]
    too_long: list[str]


def with_solved_tests(tasks: list[Task]) -> list[Task]:
    """Tasks to learn from: their test pairs whose outputs are known join the train pairs."""
    return [Task(t.task_id, t.train + [p for p in t.test if p.output is not None], t.test) for t in tasks]


def split_tasks(tasks: list[Task], builder, val_tasks: int, seed: int) -> Split:
    """Held-out tasks for the validation loss (drawn by the seed), the rest to train on; tasks without a
    leave-one-out example that fits max_seq_len are set aside."""
    fitting, too_long = [], []
    for task in tasks:
        demonstrations = task.train[1:] or task.train
        fits = builder.fit(demonstrations, task.train[0].input, task.train[0].output) is not None
        (fitting if fits else too_long).append(task if fits else task.task_id)
    order = np.random.default_rng([seed, 7]).permutation(len(fitting))
    held = {int(i) for i in order[: min(val_tasks, max(0, len(fitting) - 1))]}
    return Split([t for i, t in enumerate(fitting) if i not in held], [t for i, t in enumerate(fitting) if i in held],
                 too_long)


def latest_checkpoint(out: Path) -> tuple[int, Path] | None:
    """The last complete checkpoint (written whole, then renamed into place) and its step."""
    found = []
    for path in out.glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and path.is_dir() and all((path / name).is_file() for name in (*STATE_FILES, "trainer_state.json")):
            found.append((int(step), path))
    return max(found) if found else None


class Training:
    """One training run into `out`: set up, resumed from its last checkpoint when there is one, run."""

    def __init__(self, config: Config, tasks: list[Task], out: Path, progress: bool = True):
        self.config, self.settings, self.out, self.progress = config, config.train, out, progress
        self.tasks = tasks

    # -- setup

    def check_out(self) -> None:
        """A new folder, or one that holds a training with the same settings (then it resumes)."""
        import tomllib

        from arc_submit.run.rundir import config_differences

        saved = self.out / "config.toml"
        if saved.is_file():
            old = tomllib.loads(saved.read_text(encoding="utf-8"))
            differences = config_differences(old, self.config.to_dict(), ignore=("run", "sampling", "voting", "ttft"))
            if differences:
                raise UserError(f"--out {self.out}: holds a training with other settings ({'; '.join(differences[:3])});"
                                " resume it with the same settings or choose a new --out")
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(saved, to_toml(self.config))

    def setup(self) -> None:
        import torch

        from arc_submit.model.load import check_context, load_model, prompt_builder, resolve_dtype
        from arc_submit.model.resolve import resolve, set_offline
        from arc_submit.model.training import Trainer, attach_adapter, check_targets

        set_offline()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.resolved = resolve(self.config.model.name, self.config.model.base)
        check_context(self.resolved, self.config.prompt.max_seq_len)
        dtype = resolve_dtype(self.config.model.dtype, self.device)
        self.tokenizer, model = load_model(self.resolved, dtype, self.device, self.settings.gradient_checkpointing)
        if self.settings.method == "lora":
            check_targets(model, self.settings, self.resolved.adapter_dir)
        self.builder = prompt_builder(self.tokenizer, self.config.prompt)
        self.split = split_tasks(self.tasks, self.builder, self.settings.val_tasks, self.config.run.seed)
        if not self.split.train:
            raise UserError(f"no task to train on: {len(self.tasks)} tasks, {len(self.split.too_long)} too long for "
                            f"prompt.max_seq_len {self.config.prompt.max_seq_len}")
        torch.manual_seed(self.config.run.seed)
        if self.settings.method == "lora":
            self.model = attach_adapter(model, self.settings, self.resolved.adapter_dir, self.config.run.seed)
        else:
            self.model = model.float() if dtype != "float32" and self.device == "cpu" else model
            self.model.requires_grad_(True)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        autocast = getattr(torch, dtype) if self.device == "cuda" and dtype != "float32" else None
        self.trainer = Trainer(self.settings, self.builder, pad, self.device, autocast, progress=False)
        self.state = self.trainer.begin(self.model, self.split.train, self.settings.steps, self.config.run.seed)
        self.validation = self.trainer.eval_set(self.split.validation, self.config.run.seed) if self.split.validation else []
        self.history: list[dict] = []

    # -- checkpoints

    def resume(self) -> int:
        """Load the last checkpoint's weights, optimizer, schedule and random states; its step (0: none)."""
        import torch

        found = latest_checkpoint(self.out)
        if found is None:
            return 0
        step, path = found
        if self.settings.method == "lora":
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(self.model, load_file(str(path / "adapter_model.safetensors")))
        else:
            from safetensors.torch import load_file

            self.model.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
        self.state.optimizer.load_state_dict(load_state(path / "optimizer.pt"))
        self.state.scheduler.load_state_dict(load_state(path / "scheduler.pt"))
        rng = load_state(path / "rng_state.pth")
        self.state.restore_stream(rng["numpy"], self.builder, self.settings)
        torch.set_rng_state(rng["torch"])
        state = read_json(path / "trainer_state.json")
        self.history = state["log_history"]
        self.state.result.losses = state["losses"]
        self.state.result.steps = step
        log.info("resuming %s from %s (step %d of %d)", self.out, path.name, step, self.settings.steps)
        return step

    def save(self, step: int) -> Path:
        """checkpoint-N: written in a temporary folder, then renamed into place (never half a checkpoint)."""
        import torch

        target = self.out / CHECKPOINT.format(step=step)
        temporary = temporary_folder(target)
        try:
            self.model.save_pretrained(temporary)
            if self.settings.method == "lora":
                adapter = read_json(temporary / "adapter_config.json")
                embedded = self.config.model.name == EMBEDDED_ALIAS  # the alias resolves on any machine
                adapter["base_model_name_or_path"] = EMBEDDED_ALIAS if embedded else str(self.resolved.base_dir)
                write_json(temporary / "adapter_config.json", adapter, indent=2)
            save_tokenizer(self.tokenizer, temporary)
            torch.save(self.state.optimizer.state_dict(), temporary / "optimizer.pt")
            torch.save(self.state.scheduler.state_dict(), temporary / "scheduler.pt")
            torch.save({"numpy": self.state.rng.bit_generator.state, "torch": torch.get_rng_state()},
                       temporary / "rng_state.pth")
            write_json(temporary / "trainer_state.json", {
                "global_step": step, "max_steps": self.settings.steps, "log_history": self.history,
                "losses": self.state.result.losses,
                "train_tasks": [t.task_id for t in self.split.train],
                "validation_tasks": [t.task_id for t in self.split.validation]}, indent=1)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(temporary, target)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return target

    # -- the run

    def run(self) -> dict:
        from tqdm import tqdm

        from arc_submit.studies.logs import MetricsLog

        self.check_out()
        self.setup()
        start = self.resume()
        metrics = MetricsLog(self.out, start, self.config.to_dict() if self.settings.wandb else None)
        self.model.train()
        bar = tqdm(total=self.settings.steps, initial=start, desc="train", disable=not self.progress, dynamic_ncols=True)
        try:
            for step in range(start + 1, self.settings.steps + 1):
                inject("train", str(step))
                learning_rate = self.state.scheduler.get_last_lr()[0]
                loss = self.trainer.advance(self.state)
                metrics.scalars(step, {"train/loss": loss, "train/learning_rate": learning_rate})
                entry = {}
                if step % self.settings.log_every == 0 or step == self.settings.steps:
                    tail = self.state.result.losses[-self.settings.log_every:]
                    entry.update(loss=sum(tail) / len(tail), learning_rate=learning_rate)
                if self.validation and self.settings.eval_every and (step % self.settings.eval_every == 0
                                                                      or step == self.settings.steps):
                    entry["eval_loss"] = self.trainer.eval_loss(self.model, self.validation)
                    self.model.train()
                    metrics.scalars(step, {"validation/loss": entry["eval_loss"]})
                if entry:
                    self.history.append({"step": step, **entry})
                if step % self.settings.save_every == 0 or step == self.settings.steps:
                    self.save(step)
                bar.set_postfix(loss=f"{loss:.4f}")
                bar.update()
        finally:
            bar.close()
            metrics.close()
        return self.summary()

    def summary(self) -> dict:
        losses = [e["loss"] for e in self.history if "loss" in e]
        evals = [e["eval_loss"] for e in self.history if "eval_loss" in e]
        found = latest_checkpoint(self.out)
        return {"out": str(self.out), "steps": found[0] if found else 0, "train_tasks": len(self.split.train),
                "validation_tasks": len(self.split.validation), "too_long": self.split.too_long,
                "train_loss": losses[-1] if losses else math.nan, "val_loss": evals[-1] if evals else math.nan,
                "first_val_loss": evals[0] if evals else math.nan,
                "checkpoints": sorted(p.name for p in self.out.glob("checkpoint-*") if p.is_dir())}
