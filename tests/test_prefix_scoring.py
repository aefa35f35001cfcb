"""predict/prefix_scoring.py: answers scored on a shared prompt's cache as one prefix tree equal full forward passes
of prompt + answer, whatever the answers share and however the tree is cut into chunks; the tree holds each
distinct prefix once."""

from __future__ import annotations

import numpy as np
import pytest

from arc_submit.predict.prefix_scoring import answer_logprobs, prefix_tree, tree_chunks
from arc_submit.predict.sampler import token_logprobs
from tests.helpers.tiny_model import build_styled_model


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
