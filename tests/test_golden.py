"""A seeded tiny-model run pinned by digests: any change of behaviour (prompts, training, sampling,
voting, records) shows up here. When a change is meant, run the test once with
ARC_SUBMIT_UPDATE_GOLDEN=1 to record the new digests, and say why in the commit.

The research log's own advice for refactors: "run a very short train with a fixed seed, refactor the
code and verify that it still works the same way"."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from arc_submit.config import load_config
from arc_submit.data.tasks import load_dataset, smallest
from arc_submit.run.pipeline import run_pipeline

GOLDEN = Path(__file__).with_name("golden") / "tiny-run.json"
VOLATILE = ("timings", "schema_version")  # wall times differ run to run; the version is not behaviour


def normal_record(record: dict) -> dict:
    """A record without what differs between identical runs (seconds), or says nothing of behaviour."""
    record = {k: v for k, v in record.items() if k not in VOLATILE and not (k == "failed_stages" and v == [])}
    if record.get("ttft"):
        record["ttft"] = {k: v for k, v in record["ttft"].items() if k not in ("seconds", "compute_seconds")}
    return record


def run_digests(run_dir: Path) -> dict:
    digests = {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest()[:16]
               for name in ("submission.json", "predictions.json")}
    records = {p.stem: normal_record(json.loads(p.read_text())) for p in sorted((run_dir / "tasks").glob("*.json"))}
    digests["records"] = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:16]
    return digests


def test_a_seeded_tiny_run_gives_the_recorded_bytes(tiny_model_dir, tmp_path):
    settings = [f'model.name="{tiny_model_dir}"', 'sampling.backend="transformers"', "ttft.steps=2",
                "ttft.lora_rank=4", "ttft.lora_alpha=8.0", "ttft.eval_every=1", "sampling.augmentations=3",
                "sampling.max_new_tokens=24", "run.threads=1"]
    config = load_config(None, settings, **{"run.seed": 7})
    tasks = smallest(load_dataset("arc-agi-1-eval"), 3)
    import torch

    threads = torch.get_num_threads()
    try:
        run_pipeline(config, tasks, tmp_path / "run", None, progress=False)  # sets torch to run.threads
    finally:
        torch.set_num_threads(threads)
    digests = run_digests(tmp_path / "run")
    if os.environ.get("ARC_SUBMIT_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(digests, indent=1) + "\n")
    assert digests == json.loads(GOLDEN.read_text())
