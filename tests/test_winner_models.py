"""Models of the winners' kind, built in the tests: a tiny random Qwen3 with NVARC's 16-token tokenizer and
one with the ARChitects' single-character tokenizer. In each one's format: the answer vocabulary DFS may
follow, a TTFT run with the loss on every output that overfits one example so the model then writes
exactly that grid and stops by itself, DFS finding it, and the whole pipeline (TTFT, DFS, the nvarc rule)
through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from arc_submit.config import PromptConfig, SamplingConfig, TTFTConfig
from arc_submit.data.augment import Augmentation
from arc_submit.data.tasks import Pair, Task
from arc_submit.model.load import prompt_builder
from arc_submit.model.merge import iter_merged_weights
from arc_submit.model.training import Trainer, attach_adapter, config_stream
from arc_submit.predict.candidates import PromptJob, answer_bound, decode_candidate, dfs_completions, requests_for
from arc_submit.predict.dfs import search
from arc_submit.predict.transformers_sampler import TransformersSampler
from tests.helpers.cli import ROOT, run_cli
from tests.helpers.tiny_model import build_winner_model

TASK = Task("one", [Pair([[1, 2], [3, 4]], [[4, 3], [2, 1]])], [Pair([[1, 2], [3, 4]])])
NVARC = json.loads((ROOT / "tests" / "reference" / "nvarc-prompts.json").read_text())


@pytest.fixture(scope="module", params=["nvarc", "architects"])
def winner(request, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_winner_model(tmp_path_factory.mktemp(request.param), request.param)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.requires_grad_(False)
    builder = prompt_builder(AutoTokenizer.from_pretrained(folder), PromptConfig(format=request.param, max_seq_len=2048))
    return request.param, folder, model, builder


def test_dfs_may_follow_only_what_an_answer_is_made_of(winner):
    kind, _, _, builder = winner
    tokens = builder.tokenizer.convert_ids_to_tokens
    if kind == "nvarc":  # NVARC's own DFS: ARC_TOKENS, digits, newline and <|im_end|>
        assert builder.answer_token_ids == frozenset(NVARC["inference"]["dfs_allowed_token_ids"])
    else:
        assert sorted(tokens(sorted(builder.answer_token_ids))) == sorted([*"0123456789", "Ċ", "</s>"])


def test_masked_dfs_finds_exactly_the_unmasked_leaves_made_of_answer_tokens(winner):
    kind, folder, model, builder = winner
    sampler = TransformersSampler(folder, "float32", 2048, SamplingConfig(), 0, "cpu")
    prompt = builder.render(TASK.train, TASK.test[0].input).prompt_ids
    ends = set(builder.stop_token_ids) | set(range(0, len(builder.tokenizer), 2))  # half the tokens end a leaf
    found = {}
    for allowed in (None, builder.answer_token_ids):
        [leaves], cut = search(sampler, [prompt], 0.001, 10_000, [3], ends, allowed=allowed)
        found[allowed is None] = {leaf.tokens: leaf.logprob for leaf in leaves}
        assert cut == ""
    unmasked, masked = found[True], found[False]
    assert any(set(tokens) - builder.answer_token_ids for tokens in unmasked), "the random model must stray"
    kept = {tokens: logprob for tokens, logprob in unmasked.items() if set(tokens) <= builder.answer_token_ids}
    assert masked.keys() == kept.keys() and len(kept) >= 3
    assert all(abs(masked[tokens] - kept[tokens]) < 1e-5 for tokens in kept)  # no probability shared out


def test_a_model_of_their_kind_overfits_on_every_output_then_writes_that_grid_and_stops(winner):
    kind, folder, model, builder = winner
    config = TTFTConfig(lora_rank=16, lora_alpha=32.0, learning_rate=1e-2, schedule="constant", warmup_fraction=0.0,
                        loss="outputs")
    config.augment.geometric = config.augment.permute_colours = config.augment.shuffle_train = False
    example = next(config_stream([TASK], builder, np.random.default_rng(0), config))
    assert len(example.output_spans) == 1  # the one pair is shown and held out: both outputs are trained
    peft_model = attach_adapter(model, config, seed=0)
    result = Trainer(config, builder, builder.tokenizer.pad_token_id, progress=False).train(peft_model, [TASK], 60, seed=0)
    assert result.losses[-1] < 0.05, (kind, result.losses[::10])
    sampler = TransformersSampler(folder, "float32", 2048, SamplingConfig(), 0, "cpu")
    sampler.load_weights(iter_merged_weights(peft_model, torch.float32))
    peft_model.unload()
    prompt = builder.render(TASK.train, TASK.test[0].input).prompt_ids
    settings = SamplingConfig(backend="transformers")
    [request] = requests_for([PromptJob(0, Augmentation(), prompt, 0)], builder, settings, answer_bound(builder, settings))
    [[completion]] = sampler.generate([request])
    assert completion.finish_reason == "stop", (kind, completion.text)
    assert decode_candidate(completion, builder, Augmentation()).grid == TASK.train[0].output
    dfs = SamplingConfig(backend="transformers", method="dfs", min_prob=0.2)
    [[best, *_]], cut = dfs_completions(sampler, builder, [PromptJob(0, Augmentation(), prompt, 0)], dfs,
                                        answer_bound(builder, dfs))
    assert cut == "" and decode_candidate(best, builder, Augmentation()).grid == TASK.train[0].output


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nvarc", "architects"])
def test_the_pipeline_runs_ttft_dfs_and_the_nvarc_rule_on_a_model_of_their_kind(tmp_path, kind):
    model = build_winner_model(tmp_path / "model", kind)
    grids = [[[1, 2], [3, 4]], [[5, 0, 5], [0, 5, 0]], [[7, 7], [2, 2], [7, 1]]]  # a task the tiny model can learn
    challenges, solutions = tmp_path / "challenges.json", tmp_path / "solutions.json"
    challenges.write_text(json.dumps({"copy": {"train": [{"input": g, "output": g} for g in grids],
                                               "test": [{"input": grids[0]}]}}))
    solutions.write_text(json.dumps({"copy": [grids[0]]}))
    config = tmp_path / "winner.toml"
    config.write_text(f'[model]\nname = "{model}"\n[prompt]\nformat = "{kind}"\nmax_seq_len = 2048\n'
                      '[ttft]\nsteps = 100\nlearning_rate = 1e-2\nschedule = "constant"\nwarmup_fraction = 0.0\n'
                      'lora_rank = 8\nlora_alpha = 16.0\nloss = "outputs"\n'
                      '[ttft.augment]\ngeometric = false\npermute_colours = false\n'
                      '[sampling]\nbackend = "transformers"\naugmentations = 2\nmethod = "dfs"\nmin_prob = 0.05\n'
                      '[voting]\nrule = "nvarc"\nviews = 2\n[run]\nthreads = 1\n')
    result = run_cli("--config", str(config), "--challenges", str(challenges), "--solutions", str(solutions),
                     "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["modes"] == {"full": 1} and summary["metrics"]["pass_n"] == 1.0, summary
    assert summary["model"] == {"base": str(model.resolve()), "adapter": None}
    run_config = (tmp_path / "run" / "config.toml").read_text()
    assert f'format = "{kind}"' in run_config and 'encoder = "MinimalGridEncoder()"' in run_config
    record = json.loads((tmp_path / "run" / "tasks" / "copy.json").read_text())
    assert record["ttft"]["steps"] == 100 and record["ttft"]["losses"][-1] < 0.2 and not record["failed_stages"]
    [votes], [views] = record["votes"], record["view_scores"]
    assert grids[0] in [vote["grid"] for vote in votes]  # DFS found the answer ...
    assert all(len(view["logprobs"]) == 2 for view in views)  # ... and the nvarc rule scored it under 2 views
    assert all(vote["score"] == pytest.approx(vote["count"] + sum(view["logprobs"]) / 2)
               for vote in votes for view in views if view["grid"] == vote["grid"])


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.parametrize("kind", ["nvarc", "architects"])
def test_masked_dfs_on_the_vllm_engine_finds_what_transformers_finds(tmp_path, kind):
    """On vLLM the mask is its allowed_token_ids, and the log-probabilities it reports are over the whole
    vocabulary as on transformers: the same leaves either way, and a vocabulary smaller than DFS's top-k
    (NVARC's 16 tokens at min_prob 0.04: 26) does not break the engine."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(ROOT / "tests" / "engines" / "dfs_engines.py"), "--out", str(tmp_path / "dfs.json"),
                             "--winner", kind], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((tmp_path / "dfs.json").read_text())
    allowed = set(found["allowed"])
    for name in ("unmasked", "masked"):
        for a, b in zip(found[f"vllm {name}"], found[f"transformers {name}"]):
            assert [(tokens, below) for tokens, _, below in a] == [(tokens, below) for tokens, _, below in b]
            assert [lp for _, lp, _ in a] == pytest.approx([lp for _, lp, _ in b], abs=1e-3)
    above = {name: [[leaf[:2] for leaf in leaves if not leaf[2]] for leaves in found[f"transformers {name}"]]
             for name in ("unmasked", "masked")}  # the greedy floor (below min_prob) is each search's own
    for unmasked, masked in zip(above["unmasked"], above["masked"]):
        assert [leaf for leaf in unmasked if set(leaf[0]) <= allowed] == masked
    assert sum(map(len, above["masked"])) >= 2
    assert any(set(leaf[0]) - allowed for leaves in above["unmasked"] for leaf in leaves)


def test_every_long_stage_beats_the_heart(tmp_path):
    """A worker is killed after run.worker_timeout without a heartbeat: TTFT beats each step, DFS each
    round, scoring each call (a view here; vLLM scores a test input's views in one), so a long healthy stage
    is not taken for a hung one."""
    from arc_submit.config import load_config
    from arc_submit.run.budget import TaskPlan
    from arc_submit.run.runner import TaskRunner
    from arc_submit.run.session import open_session

    model = build_winner_model(tmp_path / "model", "nvarc")
    config = load_config(None, [f'model.name="{model}"', 'prompt.format="nvarc"', "prompt.max_seq_len=2048",
                                "ttft.steps=100", "ttft.learning_rate=1e-2", 'ttft.schedule="constant"',
                                "ttft.warmup_fraction=0.0", "ttft.lora_rank=8", "ttft.lora_alpha=16.0",
                                "ttft.augment.geometric=false", "ttft.augment.permute_colours=false",
                                'sampling.backend="transformers"', "sampling.augmentations=2", 'sampling.method="dfs"',
                                "sampling.min_prob=0.05", 'voting.rule="nvarc"', "voting.scoring_views=2",
                                "run.threads=1"])
    grids = [[[1, 2], [3, 4]], [[5, 0, 5], [0, 5, 0]], [[7, 7], [2, 2], [7, 1]]]
    task = Task("copy", [Pair(g, g) for g in grids], [Pair(grids[0])])
    beats = []
    runner = TaskRunner(config, open_session(config, progress=False), heartbeat=beats.append)
    record = runner.run_task(task, TaskPlan("full", 100, None))
    assert record.mode == "full" and record.view_scores and record.view_scores[0]
    assert "ttft copy step 100" in beats
    assert "sampling copy dfs round 1" in beats and sum("dfs round" in b for b in beats) >= 2
    assert "scoring copy test[0] view 1" in beats and "scoring copy test[0] view 2" in beats
    beats.clear()
    runner.train_shared([task])  # ttft.scope = "all": the one long training of the run
    assert "shared ttft step 1" in beats and "shared ttft step 100" in beats
