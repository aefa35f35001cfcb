"""predict/candidates.py: what the model writes is decoded after the format's answer prefix (text after the
answer ignored, prose and cut answers kept as unanswered and counted by kind) and mapped back through its view;
every answer that fits a 30x30 grid has room; a candidate brings its log-likelihood only when it wrote its grid's
own tokens."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_submit.data.augment import draw
from arc_submit.data.prompts import PromptBuilder
from arc_submit.predict.candidates import decode_candidate
from arc_submit.predict.sampler import Completion
from tests.helpers.prompts import ENCODER, builder
from tests.helpers.tasks import grids


@settings(max_examples=80, deadline=None)
@given(grid=grids(max_side=12), seed=st.integers(0, 10_000))
def test_decode_and_invert_of_sampled_text_round_trips(grid, seed):
    """What the model writes about an augmented task maps back to the original task's grid."""
    augmentation = draw(np.random.default_rng(seed), 3, keep_background=False)
    text = ENCODER.encode(augmentation.apply_grid(grid)) + "\n"
    candidate = decode_candidate(Completion(text, 10, -1.5, "stop"), builder(), augmentation)
    assert candidate.grid == grid and candidate.text is None and candidate.logprob == -1.5


def test_unparsable_or_truncated_text_is_unanswered_with_its_text_kept():
    augmentation = draw(np.random.default_rng(0), 2)
    prose = decode_candidate(Completion("The answer is 968.", 5, -3.0, "stop"), builder(), augmentation)
    assert prose.grid == [] and prose.text == "The answer is 968." and "fenced" in prose.reason
    cut = decode_candidate(Completion(ENCODER.encode([[1]]), 5, -3.0, "length"), builder(), augmentation)
    assert cut.grid == [] and "max_new_tokens" in cut.reason


def test_text_after_the_closing_fence_is_ignored():
    grid = [[1, 2], [3, 4]]
    text = ENCODER.encode(grid) + "\n\nThat is my answer.\n```grid\nnot this\n```"
    candidate = decode_candidate(Completion(text, 10, -1.0, "stop"), builder(), draw(np.random.default_rng(0), 3,
                                                                                        geometric=False, permute_colours=False))
    assert candidate.grid == grid


def test_unparsed_answers_are_counted_by_kind():
    from arc_submit.data.augment import Augmentation
    from arc_submit.predict.candidates import unparsed_counts

    parsed = [decode_candidate(Completion(text, 5, -1.0, reason), builder(), Augmentation())
              for text, reason in [(ENCODER.encode([[1]]), "stop"), ("prose", "stop"), ("```grid shape: 1x1\n1 1",
                                                                                     "length"), ("also prose", "stop")]]
    assert unparsed_counts([parsed[:2], parsed[2:]]) == {"max_new_tokens": 1, "not_fenced": 2}


def test_no_answer_that_fits_30x30_is_cut_by_the_automatic_bound():
    """ARC-AGI-1 eval has 7 tasks (ARC-AGI-2 eval 1) whose output is larger than any grid they show:
    a bound from the task's own grids cut them; the bound is the answer turn of a 30x30 grid."""
    from transformers import AutoTokenizer

    from arc_submit.config import SamplingConfig
    from arc_submit.data.tasks import load_dataset
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.predict.candidates import answer_bound, answer_reserve

    smollm = PromptBuilder(AutoTokenizer.from_pretrained(resolve(EMBEDDED_ALIAS).base_dir), ENCODER, 8192)
    settings = SamplingConfig()
    bound = answer_bound(smollm, settings)
    larger_than_shown = 0
    for task in load_dataset("arc-agi-1-eval") + load_dataset("arc-agi-2-eval"):
        needed = max(smollm.answer_tokens(pair.output) for pair in task.test)
        assert needed <= bound, task.task_id
        larger_than_shown += needed > answer_reserve(task, smollm, settings)
    assert larger_than_shown == 8  # these only need the room that max_seq_len leaves after the prompt


def test_each_request_may_use_all_the_room_its_prompt_leaves():
    from arc_submit.config import SamplingConfig
    from arc_submit.data.augment import Augmentation
    from arc_submit.predict.candidates import PromptJob, requests_for

    small = builder(max_seq_len=300)
    jobs = [PromptJob(0, Augmentation(), [1] * 100, 0), PromptJob(0, Augmentation(), [1] * 250, 1)]
    requests = requests_for(jobs, small, SamplingConfig(), bound=1000)
    assert [r.max_new_tokens for r in requests] == [200, 50]
    assert requests[0].stop_token_ids == tuple(sorted(small.stop_token_ids))


def test_a_candidate_brings_its_log_likelihood_only_when_it_wrote_its_grids_own_tokens():
    """Its tokens must be the grid's own answer tokens under its view, up to the stop token: the same text
    in other tokens is another sequence, with another log-likelihood."""
    from arc_submit.data.augment import Augmentation
    from arc_submit.predict.candidates import decode_candidate
    from arc_submit.predict.sampler import Completion
    from tests.helpers.prompts import builder as prompt_builder

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
