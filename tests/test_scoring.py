"""predict/scoring.py: scoring under views equals a direct computation with the model, each candidate's
log-likelihood as the answer to each view's prompt (full forward passes, no cache), summed for poe; what sampling
gave is not scored again; scoring on the model in memory equals scoring on the engine; and a run's predictions file
makes `metrics` rank exactly as the run did. How answers share a prompt's cache is test_prefix_scoring.py's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from arc_submit.config import SamplingConfig
from arc_submit.data.augment import balanced_views
from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.prompts import PromptBuilder
from arc_submit.data.tasks import Pair, Task, grid_key
from arc_submit.predict.sampler import Serving, token_logprobs
from arc_submit.predict.scoring import view_logprobs
from arc_submit.predict.transformers_sampler import TransformersSampler
from tests.helpers.cli import run_cli
from tests.helpers.runs import LEARN, ONE, read, run

TASK = Task("flip", [Pair([[1, 2, 3]], [[3, 2, 1]]), Pair([[4, 5]], [[5, 4]])], [Pair([[7, 8, 9]], [[9, 8, 7]])])


def test_view_logprobs_equal_full_forward_passes(tiny_model_dir, tiny):
    model, tokenizer = tiny
    builder = PromptBuilder(tokenizer, create(DEFAULT_ENCODER), 4096)
    sampler = TransformersSampler(tiny_model_dir, "float32", 4096, SamplingConfig(), 0, "cpu")
    views = []
    for augmentation in balanced_views(np.random.default_rng(0), 3, len(TASK.train)):
        augmented = augmentation.apply_task(TASK)
        views.append((augmentation, builder.render(augmented.train, augmented.test[0].input).prompt_ids))
    grids = [[[9, 8, 7]], [[7, 8, 9]], [[1], [2]]]
    scores = view_logprobs(sampler, builder, views, grids)
    for grid in grids:
        direct = []
        for augmentation, prompt in views:
            answer = builder.written_ids(augmentation.apply_grid(grid))
            direct.append(sum(token_logprobs(model, prompt + answer)[len(prompt) - 1:]))
        assert scores[grid_key(grid)] == pytest.approx(direct, abs=1e-4)


@pytest.mark.parametrize("batches", [False, True])
def test_views_stop_at_the_end_a_call_at_a_time(tiny_model_dir, tiny, batches):
    """A sampler that scores a view at a time is stopped between views by its end (each call costs a
    tick of the clock here); one that batches them scores every view in one call, or none after the end.
    Every grid gets the same views, with the scores of an unhurried run."""
    _, tokenizer = tiny
    builder = PromptBuilder(tokenizer, create(DEFAULT_ENCODER), 4096)
    sampler = TransformersSampler(tiny_model_dir, "float32", 4096, SamplingConfig(), 0, "cpu")
    sampler.batches_views = batches
    views = []
    for augmentation in balanced_views(np.random.default_rng(0), 3, len(TASK.train)):
        augmented = augmentation.apply_task(TASK)
        views.append((augmentation, builder.render(augmented.train, augmented.test[0].input).prompt_ids))
    grids = [[[9, 8, 7]], [[1], [2]]]
    full = view_logprobs(sampler, builder, views, grids)
    for end, expected in [(0.0, 0), (1.5, 3 if batches else 2), (10.0, 3)]:
        ticks, calls = [], []
        scores = view_logprobs(sampler, builder, views, grids, Serving(
            end=end, clock=lambda: len(ticks), beat=lambda which: (ticks.append(1), calls.append(which))))
        assert all(values == pytest.approx(full[key][:expected], abs=1e-5) for key, values in scores.items())
        assert calls == (["views 1-3"] if batches else ["view 1", "view 2", "view 3"])[:len(calls)]
        assert len(calls) == (min(expected, 1) if batches else expected)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sample", "dfs"])
def test_what_sampling_gave_is_not_scored_again_and_equals_scoring_it(tiny_model_dir, method):
    """Candidates after TTFT on ONE, sampled at a temperature (their log-probabilities are of the raw logits,
    as vLLM's) or found by DFS: each that wrote its grid's own answer tokens brings its log-likelihood under
    the view it was sampled on, so scoring computes only the other (view, grid) pairs, and every score equals
    computing them all."""
    import dataclasses

    from arc_submit.predict.candidates import answer_reserve, find_candidates, prompt_jobs, prompt_key
    from arc_submit.predict.scoring import score_candidates
    from arc_submit.run.budget import Budget
    from arc_submit.run.record import TaskRecord
    from arc_submit.run.runner import TaskRunner, derive_seed
    from arc_submit.run.session import open_session
    from tests.helpers.runs import tiny_config

    how = ["sampling.temperature=0.7"] if method == "sample" else ['sampling.method="dfs"', "sampling.samples=1",
                                                                   "sampling.min_prob=0.05"]
    config = tiny_config(tiny_model_dir, *LEARN, *how, "sampling.augmentations=3", 'voting.rule="poe"',
                         "sampling.augment.geometric=true")  # three distinct views
    session = open_session(config, progress=False)
    runner, seed = TaskRunner(config, session), derive_seed(0, ONE.task_id)
    with session.weights.for_task(ONE.task_id) as weights:  # the trained adapter stays attached to score on
        runner.train_and_serve(weights, ONE, Budget(0, config.ttft.steps).plan(1), seed,
                               TaskRecord(ONE.task_id, "", seed, "full"), scored=True)
        adapter = weights.adapter
        builder = session.builder
        jobs, _ = prompt_jobs(ONE, builder, config.sampling, seed, answer_reserve(ONE, builder, config.sampling))
        candidates, _, _ = find_candidates(session.sampler, builder, ONE, jobs, config.sampling, Serving(adapter))
        known = {(c.sampled_on, grid_key(c.grid)) for c in candidates[0] if c.sampled_on is not None}
        assert known, "no candidate wrote its grid's own tokens"
        asked = []

        class Counting:  # the real scorer, counting the answers it is asked for
            def __init__(self, scorer):
                self.scorer, self.batches_views = scorer, scorer.batches_views

            def score_views(self, views, adapter=None):
                asked.extend(len(answers) for _, answers in views)
                return self.scorer.score_views(views, adapter)

        with weights.scorer() as scorer:
            reused, _ = score_candidates(Counting(scorer), builder, candidates, jobs, 3, Serving(adapter))
            everything = [[dataclasses.replace(c, sampled_on=None) for c in output] for output in candidates]
            computed, _ = score_candidates(scorer, builder, everything, jobs, 3, Serving(adapter))
    assert reused[0].keys() == computed[0].keys()
    for key, logprobs in computed[0].items():
        assert reused[0][key] == pytest.approx(logprobs, abs=1e-4)
    views = [prompt_key(job.prompt_ids) for job in jobs[:3]]
    assert len(set(views)) == 3 and sum(asked) == sum((view, key) not in known for view in views for key in computed[0])


def test_the_transformers_backend_refuses_an_adapter_to_score_with(tiny_model_dir):
    from arc_submit.predict.sampler import Adapter

    sampler = TransformersSampler(tiny_model_dir, "float32", 4096, SamplingConfig(), 0, "cpu")
    with pytest.raises(ValueError, match="no LoRA adapters"):
        sampler.score([1, 2, 3], [[4]], Adapter("task", 1, tiny_model_dir))


@pytest.mark.parametrize("rule", ["poe", "nvarc"])
def test_a_run_scores_each_candidate_under_the_same_views(tiny_model_dir, tmp_path, rule):
    """A tiny model taught one task well enough to answer in grids, then its candidates scored."""
    pipeline = run(tiny_model_dir, tmp_path / "run", *LEARN, "sampling.augmentations=3", f'voting.rule="{rule}"',
                   "voting.scoring_views=2", tasks=[ONE])
    record = read(tmp_path / "run" / "tasks" / "flip.json")
    grids = {grid_key(c["grid"]) for c in record["candidates"][0] if c["grid"]}
    assert grids, "the model wrote no grid"
    views = {grid_key(entry["grid"]): entry["logprobs"] for entry in record["view_scores"][0]}
    assert set(views) == grids and all(len(logprobs) == 2 for logprobs in views.values())
    for vote in record["votes"][0]:
        count = sum(c["grid"] == vote["grid"] for c in record["candidates"][0])
        logprobs = views[grid_key(vote["grid"])]
        expected = sum(logprobs) if rule == "poe" else count + sum(logprobs) / 2
        assert vote["score"] == pytest.approx(expected) and vote["count"] == count
    assert "score_s" in record["timings"] and pipeline.summary["modes"] == {"full": 1}


def test_metrics_on_a_runs_predictions_reproduces_the_runs_own_selection(tiny_model_dir, tmp_path):
    from arc_submit.data.tasks import kaggle_layout

    challenges, solutions = kaggle_layout([ONE])
    (tmp_path / "c.json").write_text(json.dumps(challenges))
    (tmp_path / "s.json").write_text(json.dumps(solutions))
    run(tiny_model_dir, tmp_path / "run", *LEARN, "sampling.augmentations=4", 'voting.rule="poe"',
        "voting.scoring_views=2",
        tasks=[ONE])
    own = read(tmp_path / "run" / "metrics.json")["summary"]
    result = run_cli("metrics", "--predictions", str(tmp_path / "run" / "predictions.json"), "--solutions",
                     str(tmp_path / "s.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert {k: again[k] for k in ("vote_1", "vote_2", "pass_n", "accuracy")} == {
        k: own[k] for k in ("vote_1", "vote_2", "pass_n", "accuracy")}
    entry = read(tmp_path / "run" / "predictions.json")["flip"][0][0]
    assert set(entry) == {"grid", "logprob", "tokens", "score"}


@pytest.mark.slow
@pytest.mark.engine
def test_scoring_on_the_model_in_memory_equals_scoring_on_the_vllm_engine(tmp_path):
    """voting.scorer = "model" on vLLM: the trained adapter stays attached until scoring, so the candidates'
    log-likelihoods equal the engine's, which serves the same weights merged; without TTFT, the base model's.
    Afterwards no LoRA is left on the model for the next task. DFS candidates on the engine bring their
    log-probability under the view they were found on: equal to the engine computing it."""
    import os
    import subprocess
    import sys

    from tests.helpers.cli import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "tests" / "engines" / "scorers_engines.py"), "--out",
                             str(tmp_path / "scores.json")], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((tmp_path / "scores.json").read_text())
    for case, holds in (("trained", "copy"), ("base", "given")):
        run = found[case]
        assert run["failed"] == [] and run["engine_holds"] == holds and run["lora_left"] == []
        assert run["model"] and all(run["model"]), f"{case}: nothing was scored"
        for model, engine in zip(run["model"], run["engine"], strict=True):
            assert model.keys() == engine.keys()
            for key in model:
                assert model[key] == pytest.approx(engine[key], abs=1e-3)
        for engine, computed in zip(run["engine"], run["computed"], strict=True):
            assert engine.keys() == computed.keys()
            for key in engine:
                assert engine[key] == pytest.approx(computed[key], abs=1e-3)
    assert found["trained"]["brought"] > 0 and found["base"]["brought"] == 0
    trained, base = found["trained"]["model"][0], found["base"]["model"][0]
    shared = set(trained) & set(base)
    assert shared and any(abs(trained[k][0] - base[k][0]) > 0.1 for k in shared)  # TTFT moved the scores


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["task", "all", "given"])
def test_scoring_on_the_model_equals_the_samplers_whatever_weights_it_serves(tiny_model_dir, tmp_path, setting):
    """voting.scorer = "model" scores with the weights the candidates were sampled with: the task's trained
    adapter kept attached, the shared adapter of scope 'all', or a given adapter, each attached from its
    folder (on transformers both scorers share a prompt's cache: equal to float rounding)."""
    overrides = [*LEARN, "sampling.augmentations=3", 'voting.rule="poe"', "voting.scoring_views=2"]
    model_dir = tiny_model_dir
    if setting == "all":
        overrides.append('ttft.scope="all"')
    if setting == "given":  # a shared adapter trained on the task, given as the model, no TTFT
        run(tiny_model_dir, tmp_path / "shared", *overrides, 'ttft.scope="all"', tasks=[ONE])
        model_dir = tmp_path / "shared" / "shared-adapter"
        overrides.append("ttft.steps=0")
    views = {}
    for scorer in ("engine", "model"):
        run(model_dir, tmp_path / scorer, *overrides, f'voting.scorer="{scorer}"', tasks=[ONE])
        record = read(tmp_path / scorer / "tasks" / "flip.json")
        assert record["failed_stages"] == [] and record["mode"] == "full"
        views[scorer] = {str(entry["grid"]): entry["logprobs"] for entry in record["view_scores"][0]}
    assert views["model"] and views["model"].keys() == views["engine"].keys()
    for grid, logprobs in views["model"].items():
        assert logprobs == pytest.approx(views["engine"][grid], abs=1e-4)


@pytest.mark.slow
@pytest.mark.engine
def test_scores_read_from_the_engines_prefix_cache_equal_a_full_forward(tmp_path):
    """vLLM scores an answer on the prompt's cached KV blocks (left by sampling on that prompt) where it can
    read them for prompt log-probabilities, two views' answers in one call: the same log-likelihoods as a
    full forward of the transformers model, for answers off the sampled path, and for the sampled answer
    itself and its prefix, whose cached blocks reach past the prompt (vLLM leaves those positions unset: they
    are completed piece by piece, never by scoring the whole answer again). The same engine (its start is the
    cost) also samples at a temperature with seeds, more prompts than a step holds: on CPU it raised before no
    prompt was cut; each sample's log-probability is its tokens' log-likelihood (raw logits, not tempered)."""
    import os
    import subprocess
    import sys

    from tests.helpers.cli import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "tests" / "engines" / "cached_scores_engine.py"), "--out",
                             str(tmp_path / "scores.json")], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((tmp_path / "scores.json").read_text())
    assert found["engine"] == pytest.approx(found["reference"], abs=2e-3)
    first, again = found["seeded"]  # a seeded sampling at a temperature on CPU ran, and repeats itself
    assert len(first) == 8 and all(len(samples) == 2 for samples in first) and first == again
    assert len(found["sampled"]) == 16 and all(own == pytest.approx(full, abs=2e-3) for own, full in found["sampled"])
    # vLLM 0.11 cuts prompts whatever it is asked: there its seeded sampling went in calls that fit a step
    assert found["seeded_call_tokens"] == (None if found["reads_cache_param"] else 2048)
    assert found["scores_from_cache"] == found["reads_cache_param"]  # the path is taken wherever vLLM has it
    assert found["auto_on_model"] is not found["scores_from_cache"]  # voting.scorer = "auto" on CPU: the engine if so
    if found["scores_from_cache"]:
        assert found["completed"] == 4 and found["rescored"] == 0  # each view's greedy answer and its prefix
        assert found["scored_from_cache"] >= 8 * 256  # at least two 128-token blocks of each answer's prompt
    else:
        assert found["completed"] == found["rescored"] == found["scored_from_cache"] == 0
