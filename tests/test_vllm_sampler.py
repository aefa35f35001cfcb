"""predict/vllm_sampler.py and vllm_versions.py: an engine that raised is never used again (vLLM 0.11 keeps the
requests it had scheduled and returns them first from the next `generate`; a failed `wake_up` leaves its memory
pool half mapped), and every output is checked to answer its own prompt; settings a vLLM build cannot run are
refused before its engine starts. vLLM's `LLM` is stood in for by an object that behaves as vLLM 0.11's source
does in those cases; the worker-level consequences run for real in test_faults, the weight pushes in
test_pushes, the engine itself in the engine tests (test_e2e, test_scoring, test_dfs, test_winner_models)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from arc_submit.errors import EngineBroken
from arc_submit.predict.sampler import Request
from arc_submit.predict.vllm_sampler import VLLMSampler

pytest.importorskip("vllm")


class StaleEngine:
    """Fails its first `generate` out of memory after scheduling the requests, and, like vLLM, returns
    those requests first from the next call."""

    def __init__(self, fail_wake: bool = False):
        self.calls, self.left_inside, self.fail_wake = 0, [], fail_wake

    def generate(self, prompts, params, use_tqdm=False, lora_request=None):
        self.calls += 1
        ids = [p["prompt_token_ids"] for p in prompts]
        if self.calls == 1:
            self.left_inside = ids
            raise RuntimeError("CUDA out of memory. Tried to allocate 5.00 GiB")
        answered = self.left_inside + ids
        self.left_inside = []
        return [SimpleNamespace(prompt_token_ids=p, outputs=[SimpleNamespace(text="1", token_ids=[1], cumulative_logprob=-0.1,
                                                                             finish_reason="stop")]) for p in answered]

    def wake_up(self):
        if self.fail_wake:
            raise RuntimeError("CUDA error: out of memory while mapping the pool")

    def sleep(self, level=1):
        pass


def sampler_on(engine) -> VLLMSampler:
    sampler = object.__new__(VLLMSampler)  # the engine is the stand-in; everything else is the real class
    sampler.llm, sampler.sleeps = engine, True
    return sampler


def test_an_engine_that_raised_is_not_used_again():
    engine = StaleEngine()
    sampler = sampler_on(engine)
    requests = [Request([5, 6, 7], 1, 0.0, 4, 0)]
    with pytest.raises(EngineBroken, match="generate failed: RuntimeError: CUDA out of memory"):
        sampler.generate(requests)
    with pytest.raises(EngineBroken, match="not used again"):
        sampler.generate([Request([8, 9], 1, 0.0, 4, 0)])
    assert engine.calls == 1  # the stale requests never come back to be paired with new prompts


def test_outputs_for_other_prompts_break_the_engine():
    engine = StaleEngine()
    engine.calls = 1  # as if an earlier failure left requests inside, and the sampler had not seen it
    engine.left_inside = [[1, 2, 3]]
    sampler = sampler_on(engine)
    with pytest.raises(EngineBroken, match="answered 2 requests for 1 prompts"):
        sampler.generate([Request([8, 9], 1, 0.0, 4, 0)])
    assert sampler.broken


def test_outputs_that_answer_their_prompts_pass():
    engine = StaleEngine()
    engine.calls = 1
    completions = sampler_on(engine).generate([Request([8, 9], 1, 0.0, 4, 0), Request([4], 1, 0.0, 4, 1)])
    assert [c[0].text for c in completions] == ["1", "1"]


def test_a_failed_wake_breaks_the_engine():
    sampler = sampler_on(StaleEngine(fail_wake=True))
    sampler.sleep()
    with pytest.raises(EngineBroken, match="wake_up failed"):
        sampler.wake()
    with pytest.raises(EngineBroken, match="not used again"):
        sampler.prompt_logprobs([1, 2, 3])


def test_the_cpu_twins_ipex_kernel_is_not_given_four_samples_of_one_prompt(tmp_path):
    """vLLM 0.11's CPU build (IPEX) fails once four requests decode on one prompt's cached blocks: four
    samples per view are refused with one line, before the engine starts (elsewhere they are taken)."""
    from arc_submit.config import SamplingConfig
    from arc_submit.errors import UserError
    from arc_submit.predict.sampler import create_sampler
    from arc_submit.predict.vllm_versions import _decodes_with_ipex

    if not _decodes_with_ipex():
        pytest.skip("this vLLM decodes without IPEX (only vLLM 0.11's CPU build does)")
    with pytest.raises(UserError, match=r"sampling.samples = 4: vLLM 0.11's CPU build .* use at most 3"):
        create_sampler(SamplingConfig(samples=4, temperature=0.7), tmp_path / "no-model", "float32", 2048, 0, "cpu")


def test_a_cpu_block_size_vllms_cpu_attention_cannot_take_is_refused_before_the_engine_starts(tmp_path):
    """vLLM 0.32's CPU attention takes blocks of a multiple of 32 (the default there is 32, for scoring);
    another is refused with one line, before anything loads."""
    from arc_submit.config import SamplingConfig
    from arc_submit.errors import UserError
    from arc_submit.predict.sampler import create_sampler
    from arc_submit.predict.vllm_versions import engine_scores_from_cache

    if not engine_scores_from_cache():
        pytest.skip("vLLM 0.11 has its own CPU block sizes (it cannot read its cache to score)")
    with pytest.raises(UserError, match=r"sampling.block_size = 48: vLLM's CPU build takes a multiple of 32"):
        create_sampler(SamplingConfig(block_size=48), tmp_path / "no-model", "float32", 2048, 0, "cpu")


def test_a_cpu_without_a_cxx_compiler_is_refused_before_the_engine_starts(tmp_path, monkeypatch):
    """vLLM's CPU build compiles kernels with torch's inductor at its first request with log-probabilities
    (eager or not), which fails without a C++ compiler after the model's load: refused first, in one line
    that names the compiler looked for ($CXX, else g++) and the ways out."""
    import sys

    from arc_submit.config import SamplingConfig
    from arc_submit.errors import UserError
    from arc_submit.predict.sampler import create_sampler
    from arc_submit.predict.vllm_versions import missing_compiler

    assert missing_compiler({"CXX": "no-such-compiler-0"}) == "no-such-compiler-0"
    assert missing_compiler({"CXX": sys.executable}) is None  # any program on PATH is taken, as inductor takes it
    assert missing_compiler({"CXX": "no-such-compiler-0", "TORCH_INDUCTOR_INSTALL_GXX": "1"}) is None
    monkeypatch.setenv("CXX", "no-such-compiler-0")
    for eager in (True, False):
        with pytest.raises(UserError, match=r"needs a C\+\+ compiler: no-such-compiler-0 is not on PATH; install "
                                            r"g\+\+ \(or name a compiler in CXX\), or use sampling.backend = "
                                            r"\"transformers\""):
            create_sampler(SamplingConfig(enforce_eager=eager), tmp_path / "no-model", "float32", 2048, 0, "cpu")
