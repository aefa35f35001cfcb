"""The pipeline on the tiny random Llama with the transformers sampler: the two smallest ARC-AGI-1 eval tasks, a
config of tiny settings, a run of it in a run dir, and a JSON file read back. ONE is a task the tiny model learns
in seconds under the LEARN settings (then it answers in grids, so that there is something to score)."""

from __future__ import annotations

import json

from arc_submit.config import load_config
from arc_submit.data.tasks import Pair, Task, load_dataset, smallest
from arc_submit.run.pipeline import Pipeline
from arc_submit.run.rundir import RunDir

TASKS = smallest(load_dataset("arc-agi-1-eval"), 2)
ONE = Task("flip", [Pair([[1, 2, 3]], [[3, 2, 1]])], [Pair([[1, 2, 3]], [[3, 2, 1]])])  # learnable in seconds
LEARN = ["ttft.steps=80", "ttft.learning_rate=0.01", "ttft.lora_rank=16", "ttft.lora_alpha=32.0",
         'ttft.schedule="constant"', "ttft.warmup_fraction=0.0", "ttft.augment.permute_colours=false",
         "ttft.augment.geometric=false", "sampling.augment.permute_colours=false", "sampling.augment.geometric=false",
         "sampling.max_new_tokens=40", "sampling.temperature=1.0", "sampling.samples=3"]


def tiny_config(model_dir, *overrides: str, seed: int = 0):
    settings = [f'model.name="{model_dir}"', 'sampling.backend="transformers"', "ttft.steps=2", "ttft.lora_rank=4",
                "ttft.lora_alpha=8.0", "sampling.augmentations=2", "sampling.max_new_tokens=24", *overrides]
    return load_config(None, settings, **{"run.seed": seed})


def run(model_dir, run_dir, *overrides, tasks=TASKS, seed=0, **kwargs) -> Pipeline:
    pipeline = Pipeline(tiny_config(model_dir, *overrides, seed=seed), tasks, RunDir(run_dir), progress=False, **kwargs)
    pipeline.run()
    return pipeline


def read(path):
    return json.loads(path.read_text())
