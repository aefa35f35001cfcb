"""Weight pushes are checked: every parameter written, and the sampler answering like the trained model
on a probe; a push that did not take effect stops the run with one clear line. The vLLM 0.11 path (the
model's own load_weights, as on Kaggle) is exercised as far as the names it receives and the coverage
check; the >= 0.12 reload path runs for real in test_e2e."""

from __future__ import annotations

import pytest
import torch

from arc_submit.predict.sampler import PushReport
from arc_submit.predict.vllm_sampler import push_weights
from arc_submit.run.runner import RunStopped
from arc_submit.run.weights import PushError
from tests.helpers.runs import TASKS, read, run


class StackedModel(torch.nn.Module):
    """Like a vLLM model: q/k/v checkpoint tensors load into one stacked qkv parameter, and load_weights
    returns the names of the parameters it filled."""

    def __init__(self):
        super().__init__()
        self.qkv_proj = torch.nn.Parameter(torch.zeros(6, 2))
        self.o_proj = torch.nn.Parameter(torch.zeros(2, 2))
        self.received: list[str] = []

    def load_weights(self, weights):
        loaded = set()
        for name, tensor in weights:
            self.received.append(name)
            if name in ("q_proj", "k_proj", "v_proj"):
                row = ("q_proj", "k_proj", "v_proj").index(name) * 2
                self.qkv_proj.data[row: row + 2] = tensor
                loaded.add("qkv_proj")
            elif name == "o_proj":
                self.o_proj.data.copy_(tensor)
                loaded.add("o_proj")
        return loaded


class Runner011:
    """A vLLM 0.11 model runner: no reload_weights(weights_iterator=...)."""

    def __init__(self):
        self.model = StackedModel()


class Worker011:
    def __init__(self):
        self.model_runner = Runner011()


def checkpoint(*names):
    return [(name, torch.full((2, 2), float(i + 1))) for i, name in enumerate(names)]


def test_the_011_path_passes_every_name_and_reports_full_coverage():
    worker = Worker011()
    report = push_weights(worker, iter(checkpoint("q_proj", "k_proj", "v_proj", "o_proj")))
    assert worker.model_runner.model.received == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert report == PushReport(["q_proj", "k_proj", "v_proj", "o_proj"], [])
    assert torch.equal(worker.model_runner.model.o_proj, torch.full((2, 2), 4.0))
    assert "load_weights" not in vars(worker.model_runner.model)  # the recording wrapper is gone again


def test_the_011_path_names_the_parameters_that_received_nothing():
    report = push_weights(Worker011(), iter(checkpoint("q_proj", "k_proj", "v_proj", "model.o_proj")))
    assert report.missing == ["o_proj"]


def test_a_push_that_does_not_take_effect_stops_the_run_in_one_line(tiny_model_dir, tmp_path, monkeypatch):
    from arc_submit.predict.transformers_sampler import TransformersSampler

    real = TransformersSampler.load_weights

    def half_push(self, weights):  # writes every name, but only the first half of the tensors' values
        items = list(weights)
        report = real(self, iter(items[: len(items) // 2]))
        report.names, report.missing = [name for name, _ in items], []
        return report

    monkeypatch.setattr(TransformersSampler, "load_weights", half_push)
    with pytest.raises(RunStopped, match="did not take effect") as error:
        run(tiny_model_dir, tmp_path / "run", "ttft.lora_rank=8", "ttft.learning_rate=0.05")
    assert "\n" not in str(error.value) and isinstance(error.value.__cause__, PushError)
    assert read(tmp_path / "run" / "submission.json")  # still there, still valid: fallbacks


def test_pushes_that_drop_a_name_stop_the_run(tiny_model_dir, tmp_path, monkeypatch):
    from arc_submit.predict.transformers_sampler import TransformersSampler

    real = TransformersSampler.load_weights

    def drop_one(self, weights):
        return real(self, ((name, tensor) for name, tensor in weights if "layers.1.mlp.up_proj" not in name))

    monkeypatch.setattr(TransformersSampler, "load_weights", drop_one)
    with pytest.raises(RunStopped, match="received nothing for 1 parameters"):
        run(tiny_model_dir, tmp_path / "run")


def test_checked_pushes_pass_on_a_real_run(tiny_model_dir, tmp_path):
    pipeline = run(tiny_model_dir, tmp_path / "run", "ttft.learning_rate=0.05")
    assert pipeline.summary["modes"] == {"full": len(TASKS)}


@pytest.mark.parametrize("whose", ["the trained model's", "the engine's"])
def test_a_push_check_that_meets_a_nan_fails_instead_of_passing(tiny_model_dir, tmp_path, monkeypatch, whose):
    """A NaN compares False with the tolerance: without its own check it would pass, and the task would be
    sampled from broken weights. Here the probe comes back NaN, from the trained model or from the engine."""
    from arc_submit.predict.transformers_sampler import TransformersSampler
    from arc_submit.run import weights

    if whose == "the engine's":
        real = TransformersSampler.prompt_logprobs
        monkeypatch.setattr(TransformersSampler, "prompt_logprobs",
                            lambda self, *args: [float("nan")] + real(self, *args)[1:])
    else:
        real = weights.token_logprobs
        monkeypatch.setattr(weights, "token_logprobs", lambda *args: [float("nan")] + real(*args)[1:])
    with pytest.raises(RunStopped, match="are not finite") as error:
        run(tiny_model_dir, tmp_path / "run", "ttft.learning_rate=0.05")
    assert f"{whose} log-probabilities on a probe are not finite (1 of" in str(error.value)
    assert "\n" not in str(error.value) and isinstance(error.value.__cause__, PushError)
