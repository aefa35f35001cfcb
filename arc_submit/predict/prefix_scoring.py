"""Answers scored on a shared prompt with a transformers model, at the cost of their distinct tokens: the
prompt is prefilled once, the answers are laid out as a prefix tree (a token that several answers reach by
the same path is one node), and the tree goes through one forward on the prompt's cache, each node seeing
the prompt and its own ancestors (a 4D mask; its position is the prompt's length plus its depth). Every
answer's log-likelihood is then read along its path. Candidates of one test input often agree on their
header and first rows, so the tree is smaller than the answers laid end to end (benchmarks/RESULTS.md,
"Scoring candidates", measures by how much). The transformers backend scores this way, and so does a run on
vLLM that scores on the model in memory (`voting.scorer`), through a ModelScorer.

    logprobs = answer_logprobs(model, prompt_ids, [answer_ids, ...])   # one float per answer
    logprobs = ModelScorer(peft_model).score(prompt_ids, [answer_ids, ...])
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

LOGITS_PER_CHUNK = 1 << 26  # a tree goes through in chunks whose logits (nodes x vocabulary) stay below this
NODES_PER_CHUNK = 4096  # and whose mask (nodes x (prompt + nodes)) stays small with a small vocabulary (NVARC's 16)


@dataclass
class PrefixTree:
    """Answers as a prefix tree in depth-first order: node i holds `tokens[i]` at `depths[i]` (0: the
    answer's first token) below `parents[i]` (-1: the prompt); `paths[a]` are answer a's nodes in order."""

    tokens: list[int]
    parents: list[int]
    depths: list[int]
    paths: list[list[int]]


def prefix_tree(answers: list[list[int]]) -> PrefixTree:
    """The prefix tree of answers given in sorted order (each then shares the most with the one before it)."""
    tree = PrefixTree([], [], [], [])
    previous: list[int] = []
    path: list[int] = []
    for answer in answers:
        shared = _shared_length(previous, answer)
        path = path[:shared]
        for depth in range(shared, len(answer)):
            tree.tokens.append(answer[depth])
            tree.parents.append(path[-1] if path else -1)
            tree.depths.append(depth)
            path.append(len(tree.tokens) - 1)
        tree.paths.append(path)
        previous = answer
    return tree


def _shared_length(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length


def tree_chunks(answers: list[list[int]], vocabulary: int, max_logits: int = LOGITS_PER_CHUNK) -> list[range]:
    """Consecutive ranges of sorted answers, each as many as keep their tree's logits (nodes x vocabulary)
    within max_logits and its nodes within NODES_PER_CHUNK (one answer at least, whatever its length)."""
    limit = min(max_logits // vocabulary, NODES_PER_CHUNK)
    chunks, start, nodes = [], 0, 0
    for index, answer in enumerate(answers):
        new = len(answer) - (_shared_length(answers[index - 1], answer) if index > start else 0)
        if index > start and nodes + new > limit:
            chunks.append(range(start, index))
            start, nodes, new = index, 0, len(answer)
        nodes += new
    if answers:
        chunks.append(range(start, len(answers)))
    return chunks


def answer_logprobs(model, prompt_ids: list[int], answers: list[list[int]],
                    max_logits: int = LOGITS_PER_CHUNK) -> list[float]:
    """The log-likelihood of each answer (all its tokens, none empty) as the continuation of the prompt: the
    prompt's KV cache computed once, each distinct prefix of the answers once."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(answers)), key=lambda i: answers[i])
    ordered = [answers[i] for i in order]
    scores = [0.0] * len(answers)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True, logits_to_keep=1)
        prompt_cache, last = out.past_key_values, out.logits[0, -1].float()
        chunks = tree_chunks(ordered, last.shape[-1], max_logits)
        for number, chunk in enumerate(chunks):
            final = number == len(chunks) - 1  # only the last chunk may extend the prompt's own cache
            cache = prompt_cache if final else copy.deepcopy(prompt_cache)
            tree = prefix_tree(ordered[chunk.start: chunk.stop])
            logprobs = _tree_logprobs(model, cache, last, len(prompt_ids), tree)
            for i, path in zip(order[chunk.start: chunk.stop], tree.paths):
                scores[i] = sum(logprobs[node] for node in path)
    return scores


def _tree_logprobs(model, cache, last, prompt_length: int, tree: PrefixTree) -> list[float]:
    """One forward of the tree's nodes on the prompt's cache; each node's log-probability given its path is its
    logit in its parent's row less that row's log-sum-exp (a first token's row: the prompt's last)."""
    import numpy as np
    import torch

    device, count = last.device, len(tree.tokens)
    parents = torch.tensor(tree.parents, device=device)
    sees = np.zeros((count, count), dtype=bool)  # row i: node i's ancestors and itself (built on the host, sent once)
    for node, parent in enumerate(tree.parents):
        if parent >= 0:
            sees[node] = sees[parent]
        sees[node, node] = True
    dtype = model.get_input_embeddings().weight.dtype  # the hidden states' (an adapter may hold float32)
    mask = torch.zeros((1, 1, count, prompt_length + count), dtype=dtype, device=device)
    mask[0, 0, :, prompt_length:].masked_fill_(~torch.from_numpy(sees).to(device), torch.finfo(dtype).min)
    ids = torch.tensor([tree.tokens], device=device)
    positions = torch.tensor([tree.depths], device=device) + prompt_length
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=True).logits[0].float()
    rows = torch.cat([last[None], logits])  # row 0: the prompt's last; row i + 1: node i
    chosen = rows[parents + 1, ids[0]] - torch.logsumexp(rows, dim=-1)[parents + 1]
    return chosen.tolist()


@dataclass
class ModelScorer:
    """Scores answers like a sampler's `score`, on a transformers model (with whatever adapter is attached to
    it): the caller makes sure it holds the weights the candidates were sampled with."""

    model: object
    batches_views = False  # one prompt's cache at a time

    def __post_init__(self):
        self.model.eval()  # no LoRA dropout

    def score(self, prompt_ids: list[int], answers: list[list[int]], adapter=None) -> list[float]:
        """`adapter` (the engine's LoRA) is not read: the model carries its weights."""
        return answer_logprobs(self.model, prompt_ids, answers)

    def score_views(self, views: list[tuple[list[int], list[list[int]]]], adapter=None) -> list[list[float]]:
        """`score` of each (prompt_ids, answers)."""
        return [self.score(prompt_ids, answers) for prompt_ids, answers in views]
