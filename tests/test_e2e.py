"""End to end with the real stack: the embedded SmolLM2-135M, peft TTFT and the vLLM CPU build,
through the command a user types. Minutes, not seconds: `make test-fast` leaves them out."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_cli

pytestmark = pytest.mark.e2e


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke preset on the 2 smallest ARC-AGI-2 eval tasks. That a seed gives the same bytes twice is
    proven on the whole pipeline by tests/test_golden.py (tiny model) and for the vLLM engine by
    test_weights_pushed_into_the_live_engine_answer_like_a_fresh_engine: one run here, not two."""
    root = tmp_path_factory.mktemp("smoke")
    export = run_cli("data", "export", "--dataset", "arc-agi-2-eval", "--smallest", "--limit", "2",
                     "--out", str(root / "data"))
    assert export.returncode == 0, export.stderr
    result = run_cli("--config", "smoke", "--seed", "0", "--challenges", str(root / "data" / "challenges.json"),
                     "--solutions", str(root / "data" / "solutions.json"), "--run-dir", str(root / "run"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    return root, root / "run", last_json(result.stdout)


def test_smoke_gives_a_valid_submission_with_one_engine(smoke_run):
    root, run_dir, summary = smoke_run
    check = run_cli("validate", "--challenges", str(root / "data" / "challenges.json"),
                    "--submission", str(run_dir / "submission.json"))
    assert check.returncode == 0, check.stdout
    assert summary["engine_starts"] == 1 and summary["modes"] == {"full": 2}
    assert {"score", "pass_n", "vote_2", "unanswered"} <= set(summary["metrics"])
    for record_file in (run_dir / "tasks").glob("*.json"):
        record = json.loads(record_file.read_text())
        assert record["ttft"]["steps"] == 4 and len(record["ttft"]["eval_losses"]) == 2
        assert all(len(candidates) == 2 for candidates in record["candidates"])
        assert record["generated_tokens"] > 0


def test_rerunning_the_run_dir_resumes_without_work(smoke_run):
    root, run_dir, _ = smoke_run
    before = (run_dir / "submission.json").read_bytes()
    result = run_cli("--config", "smoke", "--seed", "0", "--challenges", str(root / "data" / "challenges.json"),
                     "--run-dir", str(run_dir), "--quiet")
    assert result.returncode == 0 and last_json(result.stdout)["ran"] == 0 and last_json(result.stdout)["engine_starts"] == 0
    assert (run_dir / "submission.json").read_bytes() == before


def test_a_training_whose_loss_rises_but_stays_finite_degrades_its_task(tmp_path):
    """The smoke preset with a learning rate far too high: the embedded model's loss goes from about 1 to a
    uniform guess (ln 49,152 = 10.8), finite all the way. The task is sampled with the base model and says why;
    the run exits 3, as for any degraded task. (The transformers sampler: the engine is not what is tested.)"""
    result = run_cli("--config", "smoke", "--seed", "0", "--dataset", "arc-agi-2-eval", "--smallest", "1",
                     "--run-dir", str(tmp_path / "run"), "--quiet", "--set", "ttft.learning_rate=1e6",
                     "--set", 'sampling.backend="transformers"')
    assert result.returncode == 3, result.stderr[-3000:]
    [record_file] = (tmp_path / "run" / "tasks").glob("*.json")
    record = json.loads(record_file.read_text())
    assert all(loss < 100 for loss in record["ttft"]["losses"]) and record["ttft"]["losses"][-1] > 5
    assert record["mode"] == "no_ttft" and record["failed_stages"] == ["ttft"]
    assert "the training loss rose from" in record["reasons"][0] and "worse than the base model" in record["reasons"][0]
    assert all(len(candidates) == 2 for candidates in record["candidates"])  # sampled, with the base model


def test_ttft_teaches_the_embedded_model_to_answer_in_grids(tmp_path):
    """After 32 LoRA steps on one small ARC-AGI-1 task, the 135M model answers with parsable grids,
    which go through decode, the inverse augmentation and the vote into the submission."""
    result = run_cli("--config", "cpu", "--seed", "0", "--dataset", "arc-agi-1-eval", "--smallest", "1",
                     "--set", "ttft.steps=32", "--set", "sampling.augmentations=4", "--run-dir", str(tmp_path / "run"),
                     "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json(result.stdout)
    assert summary["metrics"]["unanswered"] < 1.0, "no answer parsed after TTFT"
    record = json.loads(next((tmp_path / "run" / "tasks").glob("*.json")).read_text())
    parsed = [c for c in record["candidates"][0] if c["grid"]]
    assert parsed and record["attempts"][0][0] == record["votes"][0][0]["grid"]


def save_embedded_adapter(folder, seed: int) -> None:
    """A LoRA checkpoint on the embedded model, as a training run would leave one."""
    import torch
    from transformers import AutoModelForCausalLM

    from arc_submit.config import TTFTConfig
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.model.training import attach_adapter

    model = AutoModelForCausalLM.from_pretrained(resolve(EMBEDDED_ALIAS).base_dir, dtype=torch.float32)
    peft_model = attach_adapter(model, TTFTConfig(lora_rank=4, lora_alpha=8.0), seed=seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.01)
    peft_model.save_pretrained(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = EMBEDDED_ALIAS
    (folder / "adapter_config.json").write_text(json.dumps(config))


def test_evaluate_a_checkpoint_on_the_embedded_model_with_the_smoke_preset(tmp_path):
    """A LoRA checkpoint whose base is the embedded alias, evaluated through vLLM. A row per checkpoint of
    several, and the plot over them, are tests/test_evaluate.py's (tiny model): one checkpoint here."""
    save_embedded_adapter(tmp_path / "training" / "checkpoint-100", seed=100)
    result = run_cli("evaluate", "--config", "smoke", "--dataset", "arc-agi-2-eval", "--smallest", "1",
                     "--model", str(tmp_path / "training" / "checkpoint-100"), "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [row["step"] for row in rows] == [100] and all(row["tasks"] == 1 for row in rows)
    assert all(row["ttft_loss"] > 0 and row["eval_loss"] > 0 for row in rows)


def save_merged_model(weights: dict, like, out) -> None:
    """Write merged weights as a transformers folder: the config and tokenizer files of the model folder
    `like`, and the weights as one safetensors file (tied tensors written once)."""
    import shutil
    from pathlib import Path

    from safetensors.torch import save_file

    source, target = Path(like), Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith(("model", "pytorch_model")):
            shutil.copy2(path, target / path.name)
    unique, seen = {}, set()
    for name, tensor in weights.items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            unique[name] = tensor.contiguous()
    save_file(unique, str(target / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.engine
def test_weights_pushed_into_the_live_engine_answer_like_a_fresh_engine(tmp_path):
    """After loading task B's merged weights into the running engine, its greedy answers equal those of a
    fresh engine started on B; pushing the base back restores the base's answers."""
    import subprocess
    import sys

    import torch
    from transformers import AutoModelForCausalLM

    from arc_submit.config import TTFTConfig
    from arc_submit.model.merge import merged_weights
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.model.training import attach_adapter
    from tests.helpers.cli import ROOT

    base = resolve(EMBEDDED_ALIAS).base_dir
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = attach_adapter(model, TTFTConfig(lora_rank=8, lora_alpha=16.0), seed=3)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    save_merged_model(merged_weights(peft_model, torch.float32), base, tmp_path / "task-b")
    helper = str(ROOT / "tests" / "engines" / "live_engine.py")
    for args in (["--model", str(base), "--push", str(tmp_path / "task-b"), "--out", str(tmp_path / "live.json")],
                 ["--model", str(tmp_path / "task-b"), "--out", str(tmp_path / "fresh.json")]):
        result = subprocess.run([sys.executable, helper, *args], capture_output=True, text=True, cwd=ROOT,
                                env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-3000:]
    live, fresh = (json.loads((tmp_path / name).read_text()) for name in ("live.json", "fresh.json"))
    assert [text for text, _ in live["pushed"]] == [text for text, _ in fresh["before"]]
    assert live["pushed"] != live["before"]
    assert live["restored"] == live["before"]
    for (_, a), (_, b) in zip(live["pushed"], fresh["before"]):
        assert a == pytest.approx(b, abs=1e-3)
    # the checks the pipeline makes after every push: every parameter filled, and the engine answering
    # like the model whose weights were pushed (within PUSH_TOLERANCE for float32)
    from arc_submit.run.weights import PUSH_TOLERANCE

    assert live["missing"] == [] and live["names_sent"] > 200
    differences = [abs(a - b) for a, b in zip(live["engine_logprobs"], live["model_logprobs"])]
    assert len(differences) > 10 and sum(differences) / len(differences) < PUSH_TOLERANCE["float32"]
    assert live["missing_when_dropped"] == ["model.layers.3.mlp.down_proj.weight"]


def test_lora_serving_runs_a_task_with_a_checked_adapter(tmp_path):
    """sampling.adapter = "lora": vLLM serves each task's adapter (no merge, no push); the adapter is
    checked on a probe like a push, and the task samples with it."""
    result = run_cli("--config", "smoke", "--seed", "0", "--dataset", "arc-agi-2-eval", "--smallest", "1",
                     "--set", 'sampling.adapter="lora"', "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json(result.stdout)
    assert summary["modes"] == {"full": 1} and summary["engine_starts"] == 1
    record = json.loads(next((tmp_path / "run" / "tasks").glob("*.json")).read_text())
    assert record["ttft"]["steps"] == 4 and all(record["candidates"])
    assert (tmp_path / "run" / "adapters" / record["task_id"] / "adapter_config.json").is_file()


@pytest.mark.engine
def test_dfs_on_the_vllm_engine_finds_what_it_finds_with_transformers(tmp_path):
    """The same search on vLLM (greedy continuations with top log-probabilities, prefix caching, each
    branch ended at its floor) and on transformers (token by token with a KV cache): the same completions,
    the same probabilities."""
    import subprocess
    import sys

    from tests.helpers.cli import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "tests" / "engines" / "dfs_engines.py"), "--out", str(tmp_path / "dfs.json")],
                            capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((tmp_path / "dfs.json").read_text())
    vllm, transformers = found["vllm"]["leaves"], found["transformers"]["leaves"]
    # both walked the same tree, and it branched: more rounds than one greedy path per prompt
    assert found["vllm"]["continued"] == found["transformers"]["continued"] and len(found["vllm"]["continued"]) > 1
    assert sum(map(len, vllm)) >= 1 and [len(a) for a in vllm] == [len(b) for b in transformers]
    for a, b in zip(vllm, transformers):
        assert [tokens for tokens, _ in a] == [tokens for tokens, _ in b]
        assert [lp for _, lp in a] == pytest.approx([lp for _, lp in b], abs=1e-3)
    # ending each branch the step it falls below min_prob (FloorStop) finds exactly what decoding every
    # branch to its end finds, and decodes fewer tokens
    uncut = found["vllm uncut"]
    assert uncut["continued"] == found["vllm"]["continued"]
    assert [[tokens for tokens, _ in a] for a in uncut["leaves"]] == [[tokens for tokens, _ in a] for a in vllm]
    assert [lp for a in uncut["leaves"] for _, lp in a] == pytest.approx([lp for a in vllm for _, lp in a], abs=1e-4)
    assert found["vllm"]["branch_tokens"] < uncut["branch_tokens"], (found["vllm"]["branch_tokens"], uncut["branch_tokens"])
