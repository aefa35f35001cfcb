"""DFS candidates are exact: on a tiny model with a small vocabulary, the search returns exactly the set
of sequences that brute-force enumeration finds above the threshold, with the same probabilities, for
prompts of different lengths searched together."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from arc_submit.config import SamplingConfig
from arc_submit.predict.dfs import search
from arc_submit.predict.sampler import path_from_steps
from arc_submit.predict.transformers_sampler import TransformersSampler

VOCAB, STOP, LONGEST = 6, 5, 4
PROMPTS = [[1, 2, 3], [4, 0], [2, 2, 2, 1, 0]]


@pytest.fixture(scope="module")
def small_vocabulary_model(tmp_path_factory):
    """A tiny Llama over 6 tokens (token 5 ends an answer), with weights large enough that several
    continuations are likely."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from tests.helpers.tiny_model import build_tokenizer

    folder = tmp_path_factory.mktemp("small-vocabulary")
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         eos_token_id=STOP, pad_token_id=0, bos_token_id=None, initializer_range=0.6)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=STOP, pad_token_id=0)
    model.save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)  # only for the sampler's constructor; DFS works on ids
    return folder


def brute_force(model, prompt: list[int], min_prob: float) -> dict[tuple[int, ...], float]:
    """Every answer (non-stop tokens, then the stop token, at most LONGEST tokens) with its log-probability
    from full forward passes without any cache, kept when the probability reaches min_prob."""
    found = {}
    for length in range(LONGEST):
        for body in itertools.product([t for t in range(VOCAB) if t != STOP], repeat=length):
            answer = (*body, STOP)
            ids = torch.tensor([prompt + list(answer)])
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            total = sum(float(logprobs[len(prompt) - 1 + i, token]) for i, token in enumerate(answer))
            if total >= math.log(min_prob):
                found[answer] = total
    return found


@pytest.mark.parametrize("min_prob", [0.05, 0.1, 0.2])
def test_dfs_finds_exactly_what_brute_force_finds(small_vocabulary_model, min_prob):
    sampler = TransformersSampler(small_vocabulary_model, "float32", 64, SamplingConfig(), 0, "cpu")
    leaves, cut = search(sampler, PROMPTS, min_prob, max_candidates=1000, max_new_tokens=[LONGEST] * len(PROMPTS),
                         stop_ids={STOP})
    assert cut == ""
    for prompt, found in zip(PROMPTS, leaves):
        expected = brute_force(sampler.model, prompt, min_prob)
        assert {leaf.tokens for leaf in found if not leaf.below} == set(expected)
        assert all(leaf.below for leaf in found) == (not expected)  # the greedy floor only where nothing cleared
        for leaf in found:
            if not leaf.below:
                assert leaf.logprob == pytest.approx(expected[leaf.tokens], abs=1e-5)
    assert sum(len(found) for found in leaves) >= len(PROMPTS)  # the search had something to find


def greedy(model, prompt: list[int]) -> tuple[tuple[int, ...], float]:
    """Argmax decoding by full forward passes, to the stop token or LONGEST tokens."""
    answer, total = [], 0.0
    while len(answer) < LONGEST:
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([prompt + answer])).logits[0, -1].float(), dim=-1)
        token = int(logprobs.argmax())
        answer.append(token)
        total += float(logprobs[token])
        if token == STOP:
            break
    return tuple(answer), total


def test_when_nothing_clears_min_prob_the_greedy_completion_is_kept(small_vocabulary_model):
    sampler = TransformersSampler(small_vocabulary_model, "float32", 64, SamplingConfig(), 0, "cpu")
    leaves, cut = search(sampler, PROMPTS, 0.95, 8, [LONGEST] * len(PROMPTS), {STOP})
    assert cut == ""
    kept = 0
    for prompt, found in zip(PROMPTS, leaves):
        assert brute_force(sampler.model, prompt, 0.95) == {}  # nothing clears it
        tokens, logprob = greedy(sampler.model, prompt)
        if tokens[-1] == STOP:  # a greedy path that ends within the bound is kept, below the threshold
            [leaf] = found
            assert leaf.below and leaf.tokens == tokens and leaf.logprob == pytest.approx(logprob, abs=1e-5)
            kept += 1
        else:
            assert found == []
    assert kept >= 1


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_max_candidates_keeps_exactly_brute_forces_most_probable_even_when_it_binds(small_vocabulary_model, cap):
    sampler = TransformersSampler(small_vocabulary_model, "float32", 64, SamplingConfig(), 0, "cpu")
    bounded, cut = search(sampler, PROMPTS, 0.05, cap, [LONGEST] * 3, {STOP})
    assert cut == ""  # dropping a branch that cannot beat the kept leaves is exact, not a cut
    binds = 0
    for prompt, few in zip(PROMPTS, bounded):
        expected = sorted(brute_force(sampler.model, prompt, 0.05).items(), key=lambda item: (-item[1], item[0]))
        assert [leaf.tokens for leaf in few] == [tokens for tokens, _ in expected[:cap]]
        binds += len(expected) > cap
    assert binds >= 1


def test_a_search_stops_at_its_end(small_vocabulary_model):
    sampler = TransformersSampler(small_vocabulary_model, "float32", 64, SamplingConfig(), 0, "cpu")
    leaves, cut = search(sampler, PROMPTS, 0.05, 100, [LONGEST] * 3, {STOP}, end=0.0, clock=lambda: 1.0)
    assert leaves == [[], [], []] and "time budget" in cut


def test_a_path_stops_where_it_falls_below_its_floor():
    steps = [(1, {1: -0.1, 2: -2.0}), (3, {3: -0.5, 4: -0.9}), (5, {5: -3.0})]
    path = path_from_steps(steps, floor=-1.2, stop_ids={5})
    assert path.tokens == [1, 3] and not path.finished
    assert path.alternatives == [[], [(4, -0.9)]]
    assert path_from_steps(steps, floor=-10.0, stop_ids={5}).finished


@pytest.mark.parametrize("masked", [False, True])
def test_floor_stop_forces_the_stop_token_the_step_a_branch_falls_below_its_floor(masked):
    """vLLM's logits processor for DFS, stepped by hand as the engine steps it: rows added, moved and
    removed; each branch's token is forced to its stop token exactly at the first step where the sum of
    its greedy tokens' raw log-probabilities (the answer-token mask applied only to the choice) falls
    below its floor by more than the margin, and never before; other rows are left alone."""
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

    from arc_submit.predict.floor_stop import ALLOWED, FLOOR, MARGIN, STOP, FloorStop

    width, stop, steps = 12, 11, 10
    allowed = [0, 2, 3, 5, 7, 11] if masked else None
    generator = torch.Generator().manual_seed(3)
    logits = [torch.randn(3, width, generator=generator) * 2 for _ in range(steps)]
    floors = [-4.0, -6.0]
    processor = FloorStop(None, torch.device("cpu"), False)
    outputs: list[list[int]] = [[], [], []]
    params = [SamplingParams(extra_args={FLOOR: floor, STOP: stop, ALLOWED: allowed}) for floor in floors]
    processor.update_state(BatchUpdate(3, [], [(0, params[0], [1], outputs[0]), (1, params[1], [1], outputs[1]),
                                               (2, SamplingParams(), [1], outputs[2])], []))
    rows = {0: 0, 1: 1}  # branch -> row in the batch
    sums, forced = [0.0, 0.0], [None, None]
    for step in range(steps):
        if step == 3:  # the engine swaps two rows of its batch
            processor.update_state(BatchUpdate(3, [], [], [(0, 1, MoveDirectionality.SWAP)]))
            rows = {0: 1, 1: 0}
        batch = torch.stack([logits[step][rows_to_branch] for rows_to_branch in
                             [next(b for b, r in rows.items() if r == 0), next(b for b, r in rows.items() if r == 1), 2]])
        out = processor.apply(batch.clone())
        assert torch.equal(out[2], batch[2])  # a request without a floor is untouched
        for branch, row in rows.items():
            if forced[branch] is not None:
                continue
            logprobs = torch.log_softmax(batch[row], dim=-1)
            choice = logprobs.clone()
            if allowed is not None:
                choice[[t for t in range(width) if t not in allowed]] = float("-inf")
            token = int(choice.argmax())
            sums[branch] += float(logprobs[token])
            if sums[branch] < floors[branch] - MARGIN:
                forced[branch] = step
                assert int(out[row].argmax()) == stop and torch.isinf(out[row]).sum() == width - 1
            else:
                assert int(out[row].argmax()) == token  # the greedy choice is the engine's own
                if allowed is not None:
                    assert torch.isinf(out[row][[t for t in range(width) if t not in allowed]]).all()
            outputs[branch].append(token)  # the engine appends the sampled token
        outputs[2].append(0)
    assert all(step is not None and step > 0 for step in forced)  # both branches cut, not at the first step
    processor.update_state(BatchUpdate(1, [0, 1], [], []))  # finished branches leave the batch
    assert processor.branches == {}


@pytest.mark.slow
@pytest.mark.engine
def test_a_prompt_prefilled_in_chunks_gives_what_a_whole_prompt_gives(tmp_path):
    """On a GPU vLLM prefills a prompt longer than max_num_batched_tokens in chunks (on by default for CUDA; a
    CPU run keeps every prompt whole): its prompt log-probabilities arrive in pieces, and the floor stop sees
    the discarded sample of each chunk as its first step again. A real ARC prompt of ~1,400 tokens cut at 256,
    against the same engine with a step that holds it whole: the same prompt log-probabilities, the same
    greedy paths (followed to their length, and cut at a floor), the same DFS leaves, the same scores."""
    import os
    import subprocess
    import sys

    from tests.helpers.cli import ROOT

    found = {}
    for name, tokens in (("chunked", 256), ("whole", 4096)):
        out = tmp_path / f"{name}.json"
        result = subprocess.run([sys.executable, str(ROOT / "tests" / "engines" / "chunked_engines.py"), "--max-batched-tokens",
                                 str(tokens), "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-3000:]
        found[name] = json.loads(out.read_text())
    chunked, whole = found["chunked"], found["whole"]
    assert chunked["chunked_prefill"] and chunked["max_num_batched_tokens"] == 256 < chunked["prompt_tokens"]
    assert whole["max_num_batched_tokens"] >= whole["prompt_tokens"] == chunked["prompt_tokens"]
    assert len(chunked["logprobs"]) == chunked["prompt_tokens"] - 1
    assert chunked["logprobs"] == pytest.approx(whole["logprobs"], abs=1e-3)
    for (tokens, logprobs, finished), (whole_tokens, whole_logprobs, whole_finished) in zip(chunked["paths"],
                                                                                          whole["paths"]):
        assert tokens == whole_tokens and finished == whole_finished
        assert logprobs == pytest.approx(whole_logprobs, abs=1e-3)
    followed, cut = chunked["paths"]
    assert len(cut[0]) < len(followed[0]) and not cut[2]  # the floor ended the second path early
    assert [leaf[0] for leaf in chunked["leaves"]] == [leaf[0] for leaf in whole["leaves"]]
    assert [leaf[1] for leaf in chunked["leaves"]] == pytest.approx([leaf[1] for leaf in whole["leaves"]], abs=1e-3)
    assert chunked["scores"] == pytest.approx(whole["scores"], abs=1e-3)
