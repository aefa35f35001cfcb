"""Scoring under views equals a direct computation with the model: each candidate's log-likelihood as
the answer to each view's prompt (full forward passes, no cache), summed for poe, whether the answers
share the prompt's cache in one batch, in chunks or one by one; and a run's predictions file makes
`metrics` rank exactly as the run did."""

from __future__ import annotations

import json

import numpy as np
import pytest

from arc_submit.config import SamplingConfig
from arc_submit.data.augment import balanced_views
from arc_submit.data.encoders import DEFAULT_ENCODER, create
from arc_submit.data.prompts import PromptBuilder
from arc_submit.data.tasks import Pair, Task, grid_key
from arc_submit.predict.prefix_scoring import answer_logprobs, prefix_tree, tree_chunks
from arc_submit.predict.sampler import Serving, token_logprobs
from arc_submit.predict.scoring import view_logprobs
from arc_submit.predict.transformers_sampler import TransformersSampler
from tests.conftest import run_cli
from tests.test_pipeline import read, run
from tests.tiny_model import build_styled_model

TASK = Task("flip", [Pair([[1, 2, 3]], [[3, 2, 1]]), Pair([[4, 5]], [[5, 4]])], [Pair([[7, 8, 9]], [[9, 8, 7]])])
ONE = Task("flip", [Pair([[1, 2, 3]], [[3, 2, 1]])], [Pair([[1, 2, 3]], [[3, 2, 1]])])  # learnable in seconds
LEARN = ["ttft.steps=80", "ttft.learning_rate=0.01", "ttft.lora_rank=16", "ttft.lora_alpha=32.0",
         'ttft.schedule="constant"', "ttft.warmup_fraction=0.0", "ttft.augment.permute_colours=false",
         "ttft.augment.geometric=false", "sampling.augment.permute_colours=false", "sampling.augment.geometric=false",
         "sampling.max_new_tokens=40", "sampling.temperature=1.0", "sampling.samples=3"]


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
    from tests.test_pipeline import tiny_config

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


def test_a_candidate_brings_its_log_likelihood_only_when_it_wrote_its_grids_own_tokens():
    """Its tokens must be the grid's own answer tokens under its view, up to the stop token: the same text
    in other tokens is another sequence, with another log-likelihood."""
    from arc_submit.data.augment import Augmentation
    from arc_submit.predict.candidates import decode_candidate
    from arc_submit.predict.sampler import Completion
    from tests.test_prompts import builder as prompt_builder

    builder, augmentation = prompt_builder(), Augmentation(transform="rot90", colours=(0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    grid = [[1, 2, 0], [0, 1, 1]]
    view = augmentation.apply_grid(grid)
    written = builder.written_ids(view)
    assert builder.answer_ids(view)[: len(written)] == written and written[-1] in builder.stop_token_ids
    text = builder.tokenizer.decode(written, skip_special_tokens=True)
    own = decode_candidate(Completion(text, len(written), -2.0, "stop", tuple(written)), builder, augmentation,
                           b"view")
    assert own.grid == grid and own.sampled_on == b"view"
    assert decode_candidate(Completion(text, len(written), -2.0, "stop", tuple(written)), builder, augmentation
                            ).sampled_on is None  # no prompt said
    split = builder.tokenizer(builder.tokenizer.decode(written[:1]) + " ", add_special_tokens=False)["input_ids"]
    other = decode_candidate(Completion(text, 9, -2.0, "stop", tuple(split + written[1:])), builder, augmentation,
                             b"view")
    assert other.grid == grid and other.sampled_on is None  # the same grid, other tokens: scored like any other
    assert decode_candidate(Completion(text, 9, None, "stop", tuple(written)), builder, augmentation, b"view"
                            ).sampled_on is None  # no log-probability


def full_forward_logprob(model, prompt: list[int], answer: list[int]) -> float:
    return sum(token_logprobs(model, prompt + answer)[len(prompt) - 1:])


def related_answers(rng, vocabulary: int) -> list[list[int]]:
    """Answers as candidates come: some random, some a random one's prefix with a new tail, some repeated,
    some a prefix of another (a 12-token alphabet, so that many share their first tokens)."""
    alphabet = rng.integers(0, vocabulary, 12)
    answers = [alphabet[rng.integers(0, 12, int(rng.integers(1, 25)))].tolist()]
    for _ in range(int(rng.integers(0, 9))):
        base = answers[int(rng.integers(0, len(answers)))]
        kind = rng.integers(0, 4)
        if kind == 0:
            answers.append(alphabet[rng.integers(0, 12, int(rng.integers(1, 25)))].tolist())
        elif kind == 1:
            keep = int(rng.integers(0, len(base) + 1))
            answers.append(base[:keep] + alphabet[rng.integers(0, 12, int(rng.integers(1, 10)))].tolist())
        elif kind == 2:
            answers.append(list(base))
        else:
            answers.append(base[: int(rng.integers(1, len(base) + 1))])
    return answers


@pytest.mark.parametrize("style", ["llama", "qwen3"])
def test_shared_prefix_scores_equal_full_forward_passes(tiny_model_dir, tmp_path, style):
    """Random prompts and answers that share prefixes (repeated, one the prefix of another, or not at all):
    scored as one prefix tree on the prompt's cache (one chunk, chunks of a few nodes, one answer a chunk)
    the scores equal full forward passes of prompt + answer, in the answers' own order."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = tiny_model_dir if style == "llama" else build_styled_model(tmp_path / style, "qwen3")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    vocabulary = model.config.vocab_size
    rng = np.random.default_rng(0)
    for _ in range(6):
        prompt = rng.integers(0, vocabulary, int(rng.integers(1, 60))).tolist()
        answers = related_answers(rng, vocabulary)
        direct = [full_forward_logprob(model, prompt, answer) for answer in answers]
        for max_logits in (1 << 30, 7 * vocabulary, 1):  # one tree, trees of about 7 nodes, one answer each
            assert answer_logprobs(model, prompt, answers, max_logits) == pytest.approx(direct, abs=1e-4)


def test_a_prefix_tree_holds_each_distinct_prefix_once():
    """Every answer reads back from its path; the nodes are exactly the answers' distinct non-empty prefixes;
    a node's parent holds the prefix one shorter (-1 for the first token)."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        answers = sorted(related_answers(rng, 50))
        tree = prefix_tree(answers)
        assert [[tree.tokens[node] for node in path] for path in tree.paths] == answers
        assert len(tree.tokens) == len({tuple(a[:k]) for a in answers for k in range(1, len(a) + 1)})
        for path in tree.paths:
            assert [tree.parents[node] for node in path] == [-1] + path[:-1]
            assert [tree.depths[node] for node in path] == list(range(len(path)))
            assert all(parent < node for node, parent in zip(path, [-1] + path[:-1]))  # parents come first


def test_tree_chunks_keep_order_and_their_logits_bound():
    answers = [[1, 2], [1, 2, 3], [1, 4], [5, 6, 7, 8, 9]]  # 2 nodes, +1, +1, +5
    assert tree_chunks(answers, 10, 40) == [range(0, 3), range(3, 4)]  # 4 nodes fit 40 / 10; 9 do not
    assert tree_chunks(answers, 10, 90) == [range(0, 4)]
    assert tree_chunks(answers, 10, 1) == [range(0, 1), range(1, 2), range(2, 3), range(3, 4)]  # one answer each
    assert tree_chunks([[1] * 5000], 10, 1 << 30) == [range(0, 1)]  # over NODES_PER_CHUNK, alone
    assert tree_chunks([[1] * 3000, [2] * 3000], 10, 1 << 30) == [range(0, 1), range(1, 2)]
    assert tree_chunks([], 10, 40) == []


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

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "tests" / "scorers_engines.py"), "--out",
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


def test_sampling_again_on_the_base_model_takes_the_kept_adapter_off_first(tiny_model_dir, tmp_path, monkeypatch):
    """run.on_error = degrade, sampling fails after TTFT: the adapter kept to score on comes off before the
    base model's weights are served again (else their push check fails), and the run goes on."""
    monkeypatch.setenv("ARC_SUBMIT_FAULTS", "sampling:flip:error-once")
    monkeypatch.setenv("ARC_SUBMIT_FAULTS_MARKS", str(tmp_path / "marks"))
    run(tiny_model_dir, tmp_path / "run", *LEARN, 'voting.rule="poe"', "voting.scoring_views=2",
        'voting.scorer="model"',
        'run.on_error="degrade"', tasks=[ONE])
    record = read(tmp_path / "run" / "tasks" / "flip.json")
    assert record["mode"] == "no_ttft" and record["failed_stages"] == ["sampling"]
    assert "sampled again with the base model (no TTFT)" in record["reasons"]


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

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "tests" / "cached_scores_engine.py"), "--out",
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
