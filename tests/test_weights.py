"""run/weights.py: the one owner of the weights the sampler serves. Its blocks leave the model bare whatever
happens in them, its state says what the sampler answers with, and it never lets a scorer or a sampling
believe the engine holds weights it does not. On the tiny model and the transformers sampler (whose pushes
are real copies into a second model, checked on a probe as the engine's are)."""

from __future__ import annotations

import pytest

from arc_submit.data.tasks import Pair, Task
from tests.helpers.runs import tiny_config

TASK = Task("flip", [Pair([[1, 2, 3]], [[3, 2, 1]]), Pair([[4, 5]], [[5, 4]])], [Pair([[6, 7]])])


@pytest.fixture(scope="module")
def session(tiny_model_dir):
    from arc_submit.run.session import open_session

    return open_session(tiny_config(tiny_model_dir, 'voting.scorer="model"'), progress=False)


def lora_modules(model) -> list[str]:
    return [name for name, _ in model.named_modules() if "lora_" in name]


def test_a_task_block_leaves_the_model_bare_even_when_it_fails(session):
    weights = session.weights
    with pytest.raises(RuntimeError, match="in training"):
        with weights.for_task(TASK.task_id) as task_weights:
            with task_weights.training(seed=1) as peft_model:
                assert lora_modules(peft_model)
                raise RuntimeError("in training")
    assert lora_modules(weights.model) == [] and task_weights.trained_model is None
    with pytest.raises(RuntimeError, match="after serving"):
        with weights.for_task(TASK.task_id) as task_weights:
            with task_weights.training(seed=1):
                pass
            task_weights.serve_trained(weights.probe(TASK), keep=True)  # kept attached to score on
            assert lora_modules(weights.model)
            raise RuntimeError("after serving")
    assert lora_modules(weights.model) == []
    with weights.attached(seed=2) as peft_model:
        assert lora_modules(peft_model)
    assert lora_modules(weights.model) == []


def test_what_the_sampler_serves_follows_every_push(session):
    """A task's trained weights are held under its id until the model as given is served again; weights pushed
    past the owner (a benchmark's own push) are not trusted: the next serve_start pushes the given ones."""
    weights = session.weights
    probe = weights.probe(TASK)
    with weights.for_task(TASK.task_id) as task_weights:
        with task_weights.training(seed=1) as peft_model:
            for parameter in peft_model.parameters():
                if parameter.requires_grad:
                    parameter.data.normal_(0, 0.5)  # a trained adapter: other weights than the base
        task_weights.serve_trained(probe)
        assert task_weights.trained and weights.holds == TASK.task_id
        assert lora_modules(weights.model) == []  # not kept: nothing scores on it
        with pytest.raises(ValueError, match="the engine holds flip's weights"):  # scoring on the model, not kept
            with task_weights.scorer():
                pass
        task_weights.serve_start(probe)
        assert not task_weights.trained and weights.holds == "given"
    base = session.sampler.prompt_logprobs(probe)
    with weights.attached(seed=3) as peft_model:
        for parameter in peft_model.parameters():
            if parameter.requires_grad:
                parameter.data.normal_(0, 0.5)
        weights.pushed_elsewhere()
        from arc_submit.model.merge import iter_merged_weights

        session.sampler.load_weights(iter_merged_weights(peft_model, weights.torch_dtype))
    assert weights.holds == "loading" and session.sampler.prompt_logprobs(probe) != pytest.approx(base, abs=1e-3)
    weights.serve_start(probe)  # pushed again, and checked on the probe
    assert weights.holds == "given" and session.sampler.prompt_logprobs(probe) == pytest.approx(base, abs=1e-4)
