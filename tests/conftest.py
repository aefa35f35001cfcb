"""Fixtures every test file may use (tiny challenges, the tiny model), and how the suite spreads over xdist
processes. Plain helpers that test files import live in tests/helpers/."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_challenges(tmp_path):
    """A two-task challenges file and its solutions, in Kaggle layout."""
    import json

    challenges = {
        "aaaa0001": {"train": [{"input": [[1, 0]], "output": [[0, 1]]}], "test": [{"input": [[2, 0]]}]},
        "bbbb0002": {
            "train": [{"input": [[1]], "output": [[1, 1]]}, {"input": [[2]], "output": [[2, 2]]}],
            "test": [{"input": [[3]]}, {"input": [[4]]}],
        },
    }
    solutions = {"aaaa0001": [[[0, 2]]], "bbbb0002": [[[3, 3]], [[4, 4]]]}
    (tmp_path / "challenges.json").write_text(json.dumps(challenges))
    (tmp_path / "solutions.json").write_text(json.dumps(solutions))
    return tmp_path / "challenges.json", tmp_path / "solutions.json"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama and its character tokenizer, saved once per test session."""
    from tests.helpers.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def tiny(tiny_model_dir):
    """(model, tokenizer) freshly loaded from the tiny model folder, float32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.requires_grad_(False)
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


# -- running the suite on two processes (pytest-xdist, `make test`): tests that share a module-scoped
# fixture (one smoke run, one golden pair of runs, one Ray instance) stay together on one process, so
# the fixture is built once; every other test goes wherever a process is free. Each process (and every
# process it starts: CLI runs, vLLM's engine) gets a core of its own and one thread: two engines whose
# OpenMP threads spin on the same cores run many times slower than one after the other.
ONE_PROCESS_MODULES = {"test_ray"}  # one local Ray instance at a time (pytest names a module by its file)


def pytest_configure(config):
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...
    if not worker or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if count < 2 or len(cores) < count:
        return
    share = len(cores) // count
    mine = cores[int(worker[2:]) * share:(int(worker[2:]) + 1) * share]
    os.sched_setaffinity(0, mine)
    os.environ["OMP_NUM_THREADS"] = str(len(mine))
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, mine))
    import torch

    torch.set_num_threads(len(mine))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        defs = getattr(item, "_fixtureinfo", None)
        shared = defs is not None and any(
            fixture.scope == "module" for fixtures in defs.name2fixturedefs.values() for fixture in fixtures)
        if shared or module in ONE_PROCESS_MODULES:
            item.add_marker(pytest.mark.xdist_group(name=module))
