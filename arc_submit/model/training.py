"""LoRA training on ARC tasks' own train pairs, leave-one-out, each example under a fresh seeded
augmentation, with the loss on the answer tokens only: test-time fine-tuning (TTFT) uses it per task.

    trainer = Trainer(config.ttft, builder, pad_id)
    peft_model = attach_adapter(model, config.ttft, seed=task_seed)
    result = trainer.train(peft_model, tasks=[task], steps=100, seed=task_seed)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from arc_submit.config import TTFTConfig
from arc_submit.data.augment import draw
from arc_submit.data.prompts import Example, PromptBuilder
from arc_submit.data.tasks import Pair, Task
from arc_submit.errors import UserError
from arc_submit.model.schedules import schedule_factors

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


class TaskTooLong(Exception):
    """No leave-one-out example of the task fits `max_seq_len`, even with a single demonstration."""


@dataclass
class TrainResult:
    """What one training run did: per-step losses and learning rates, eval losses, tokens and time."""

    steps: int = 0
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    compute_seconds: float = 0.0  # inside forward, backward and optimizer steps
    stopped_early: str = ""

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "losses": [round(x, 6) for x in self.losses],
            "learning_rates": [float(f"{x:.6g}") for x in self.learning_rates],
            "eval_losses": [[step, round(loss, 6)] for step, loss in self.eval_losses],
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "compute_seconds": round(self.compute_seconds, 3),
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TrainResult:
        return cls(int(data["steps"]), [float(x) for x in data["losses"]], [float(x) for x in data["learning_rates"]],
                   [(int(step), float(loss)) for step, loss in data["eval_losses"]], int(data["tokens"]),
                   float(data["seconds"]), float(data["compute_seconds"]), str(data["stopped_early"]))


# A training that made the model worse: the loss at its end (the mean of its last quarter of steps) above the
# loss of its first step (computed on the untrained weights) by more than LOSS_RISE nats per answer token and
# more than LOSS_RISE_RATIO times. A healthy TTFT falls; one example's loss differs from another's by far less
# than a nat per token, while a learning rate far too high, or an fp16 overflow that stays finite, ends near a
# uniform guess (ln of the vocabulary: 10.8 nats for a 49,152-token one).
LOSS_RISE = 1.0
LOSS_RISE_RATIO = 2.0


def loss_rose(losses: list[float]) -> str:
    """Why these per-step losses say the training made the model worse, or '' when they do not."""
    if len(losses) < 2:
        return ""
    start, last = losses[0], losses[-max(1, len(losses) // 4):]
    end = sum(last) / len(last)
    if end > start + LOSS_RISE and end > start * LOSS_RISE_RATIO:
        return (f"the training loss rose from {start:.3f} at its first step to {end:.3f} over its last {len(last)}: "
                "the trained model is worse than the base model (a learning rate too high?)")
    return ""


# ----------------------------------------------------------------------------- examples


def leave_one_out(task: Task, builder: PromptBuilder, rng: np.random.Generator, options: dict,
                  outputs: bool = False) -> Example | None:
    """One training example: a random train pair is the target, the others (augmented, reordered) the
    demonstrations (their answers trained on too with `outputs`); None when it does not fit even with one
    demonstration."""
    target_index = int(rng.integers(len(task.train)))
    augmentation = draw(rng, len(task.train), **options)
    augmented = augmentation.apply_task(task)
    position = augmentation.train_order.index(target_index) if augmentation.train_order else target_index
    target = augmented.train[position]
    demonstrations = [pair for i, pair in enumerate(augmented.train) if i != position] or [target]
    return builder.fit(demonstrations, target.input, target.output, outputs=outputs)


def example_stream(tasks: list[Task], builder: PromptBuilder, rng: np.random.Generator, options: dict,
                   max_misses: int = 20, outputs: bool = False) -> Iterator[Example]:
    """Endless leave-one-out examples from the tasks (a random task each time); TaskTooLong when a task
    gives `max_misses` examples in a row that do not fit."""
    misses = 0
    while True:
        task = tasks[int(rng.integers(len(tasks)))] if len(tasks) > 1 else tasks[0]
        example = leave_one_out(task, builder, rng, options, outputs)
        if example is not None:
            misses = 0
            yield example
            continue
        misses += 1
        if misses >= max_misses:
            raise TaskTooLong(f"task {task.task_id}: no training example fits max_seq_len {builder.max_seq_len}")


def config_stream(tasks: list[Task], builder: PromptBuilder, rng: np.random.Generator, config: TTFTConfig
                  ) -> Iterator[Example]:
    """The example stream of a training configuration: its augmentations, and its loss (`loss = "outputs"`:
    every demonstration's answer as well)."""
    return example_stream(tasks, builder, rng, config.augment.draw_options(),
                          outputs=config.every_output(builder.format.multi_turn))


def collate(examples: list[Example], pad_id: int):
    """Right-padded input ids, attention mask and labels (the answer's tokens, and each demonstration's
    answer where the example marks them) as torch tensors."""
    import torch

    width = max(example.length for example in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        tokens = example.prompt_ids + example.answer_ids
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        labels[row, len(example.prompt_ids): len(tokens)] = torch.tensor(example.answer_ids)
        for start, end in example.output_spans:
            labels[row, start:end] = ids[row, start:end]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def answer_loss(model, batch: dict):
    """The mean cross-entropy of the answer tokens, as transformers computes it from `labels`, but with
    logits made only where the next token is an answer token: the vocabulary-wide logits of the whole
    prompt (at 8192 tokens and a 150k vocabulary, ~12 GiB) are never materialised."""
    import torch

    targets = batch["labels"][:, 1:]
    positions = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if _keeps_logits(model):
        logits = model(**inputs, logits_to_keep=positions).logits
    else:
        logits = model(**inputs).logits[:, positions]
    chosen = targets[:, positions]
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), chosen.reshape(-1),
                                             ignore_index=IGNORE_INDEX)


def _keeps_logits(model) -> bool:
    """Whether the model's forward takes `logits_to_keep` (transformers' causal LMs do)."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


# ----------------------------------------------------------------------------- adapters


def lora_config(config: TTFTConfig):
    from peft import LoraConfig

    targets = "all-linear" if config.target_modules == ["all-linear"] else list(config.target_modules)
    return LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets, bias="none", task_type="CAUSAL_LM", use_rslora=config.rslora,
    )


TIED = ("embed_tokens", "lm_head")


def check_targets(model, config: TTFTConfig, adapter_dir=None) -> None:
    """UserError when LoRA targets the input or output embedding of a model that ties them (Qwen3-4B,
    SmolLM2): the adapter would give each its own delta, which one shared merged weight cannot hold, so
    the engine would serve another model than the trained one. A given adapter (`adapter_dir`) is judged
    by its own adapter_config.json, whose targets it keeps."""
    import json
    from pathlib import Path

    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if not getattr(text_config, "tie_word_embeddings", False):
        return
    if adapter_dir is not None:
        given = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("target_modules") or []
        tied = [name for name in TIED if any(str(target).split(".")[-1] == name for target in given)]
        if tied:
            raise UserError(f"--model {adapter_dir}: the adapter targets {' and '.join(tied)}, but its base model ties "
                            "its input and output embeddings: a merged model cannot hold the adapter's deltas of one "
                            "shared weight")
        return
    tied = [name for name in TIED if name in config.target_modules]
    if tied:
        raise UserError(f"{config.SECTION}.target_modules includes {' and '.join(tied)}, but the model ties its input "
                        "and output embeddings: a merged model cannot hold the adapter's deltas of one shared weight; "
                        f"leave {' and '.join(tied)} out")


def attach_adapter(model, config: TTFTConfig, adapter_dir=None, seed: int = 0):
    """The model wrapped with a trainable LoRA: a fresh one (seeded), or a copy of `adapter_dir`."""
    import torch
    from peft import PeftModel, get_peft_model

    torch.manual_seed(seed)
    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    return get_peft_model(model, lora_config(config))


def detach_adapter(peft_model):
    """The base model with the adapter removed (not merged): ready for the next task's adapter. peft 0.17 (the
    Kaggle pin) leaves the adapter's `peft_config` on the model, and the next task's attach then warns of
    "multiple adapters"; peft 0.21 removes it itself, as done here."""
    base = peft_model.unload()
    vars(base).pop("peft_config", None)
    return base


# ----------------------------------------------------------------------------- training


@dataclass
class TrainState:
    """A training run between two optimizer steps. `rng` drives the example stream: with the optimizer
    and scheduler state it is all a checkpoint needs to resume the very same run."""

    model: object
    tasks: list[Task]
    rng: np.random.Generator
    stream: Iterator[Example]
    parameters: list
    optimizer: object
    scheduler: object
    scaler: object
    steps: int
    result: TrainResult

    def restore_stream(self, rng_state: dict, builder: PromptBuilder, config: TTFTConfig) -> None:
        """Continue the example stream from a saved generator state."""
        self.rng.bit_generator.state = rng_state
        self.stream = config_stream(self.tasks, builder, self.rng, config)


@dataclass
class Trainer:
    """Trains the attached adapter of `model` for a number of optimizer steps."""

    config: TTFTConfig
    builder: PromptBuilder
    pad_id: int
    device: str = "cpu"
    autocast_dtype: object = None  # a torch dtype for mixed precision on CUDA, else None
    clock: Callable[[], float] = time.monotonic
    progress: bool = True
    on_step: Callable[[int], None] = lambda step: None  # called after every optimizer step (heartbeats)

    def __post_init__(self):
        # refused before the first task, not at its first example
        if self.config.every_output(self.builder.format.multi_turn):
            try:
                self.builder.render([Pair([[0]], [[1]])], [[0]], [[1]], outputs=True)
            except ValueError as error:
                raise UserError(f"{self.config.SECTION}.loss = 'outputs': {error}") from None

    def train(self, model, tasks: list[Task], steps: int, seed: int, end: float | None = None) -> TrainResult:
        """Run `steps` optimizer steps (fewer when `end` on `clock` passes). Raises TaskTooLong."""
        state = self.begin(model, tasks, steps, seed)
        eval_set = self.eval_set(tasks, seed) if self.config.eval_every else []
        start = self.clock()
        model.train()
        bar = _progress(steps, "ttft", self.progress)
        for step in range(steps):
            if end is not None and self.clock() >= end:
                state.result.stopped_early = f"time budget: stopped after {step} of {steps} steps"
                break
            loss = self.advance(state)
            if eval_set and (step + 1) % self.config.eval_every == 0:
                state.result.eval_losses.append((step + 1, self.eval_loss(model, eval_set)))
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update()
            self.on_step(step + 1)
        bar.close()
        model.eval()
        state.result.seconds = self.clock() - start
        return state.result

    def begin(self, model, tasks: list[Task], steps: int, seed: int) -> TrainState:
        """Everything a run of `steps` optimizer steps keeps between steps: the seeded example stream, the
        optimizer over the trainable parameters, the schedule, what was measured."""
        import torch

        rng = np.random.default_rng(seed)
        stream = config_stream(tasks, self.builder, rng, self.config)
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=self.config.learning_rate, weight_decay=self.config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_factors(self.config, steps))
        scaler = torch.amp.GradScaler(self.device) if self.autocast_dtype == torch.float16 else None
        return TrainState(model, tasks, rng, stream, parameters, optimizer, scheduler, scaler, steps, TrainResult())

    def advance(self, state: TrainState) -> float:
        """One optimizer step; its loss."""
        result = state.result
        result.learning_rates.append(state.scheduler.get_last_lr()[0])
        loss, tokens, compute = self._step(state.model, state.stream, state.optimizer, state.parameters, state.scaler)
        state.scheduler.step()
        result.losses.append(loss)
        result.tokens += tokens
        result.compute_seconds += compute
        result.steps += 1
        return loss

    def _step(self, model, stream, optimizer, parameters, scaler) -> tuple[float, int, float]:
        """One optimizer step: (loss, tokens trained, seconds in forward/backward/optimizer)."""
        import torch

        total_loss, tokens, compute = 0.0, 0, 0.0
        accumulation = self.config.gradient_accumulation
        for _ in range(accumulation):
            batch = collate([next(stream) for _ in range(self.config.batch_size)], self.pad_id)
            batch = {name: tensor.to(self.device) for name, tensor in batch.items()}
            start = time.perf_counter()
            with self._autocast():
                loss = answer_loss(model, batch) / accumulation
            (scaler.scale(loss) if scaler else loss).backward()
            total_loss += loss.item()
            compute += time.perf_counter() - start
            tokens += int(batch["attention_mask"].sum())
        start = time.perf_counter()
        if scaler:
            scaler.unscale_(optimizer)
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, self.config.max_grad_norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        compute += time.perf_counter() - start
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"training loss is {total_loss}; lower {self.config.SECTION}.learning_rate or use "
                                     "float32")
        return total_loss, tokens, compute

    def _autocast(self):
        import contextlib

        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=self.autocast_dtype)

    def eval_set(self, tasks: list[Task], seed: int) -> list[Example]:
        """Fixed leave-one-out examples under augmentations drawn apart from the training stream."""
        rng = np.random.default_rng([seed, 1])
        stream = config_stream(tasks, self.builder, rng, self.config)
        return [next(stream) for _ in range(self.config.eval_examples)]

    def eval_loss(self, model, examples: list[Example]) -> float:
        """Mean answer-token loss over the examples, without training."""
        import torch

        was_training = model.training
        model.eval()
        losses = []
        with torch.no_grad(), self._autocast():
            for example in examples:
                batch = {k: v.to(self.device) for k, v in collate([example], self.pad_id).items()}
                losses.append(answer_loss(model, batch).item())
        model.train(was_training)
        return float(np.mean(losses))


def _progress(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, leave=False, disable=not enabled, dynamic_ncols=True)
