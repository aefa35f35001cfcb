"""Pictures, reports and studies: PNG sizes and pixels, a self-contained HTML report, evaluate and
variability tables, and the tokens command (tiny model; the smoke-preset runs are in test_e2e.py)."""

from __future__ import annotations

import json
import struct
from html.parser import HTMLParser

import matplotlib.image
import pytest

from arc_submit.data.tasks import Pair, Task
from arc_submit.studies.evaluate import checkpoint_step, format_table, spread
from arc_submit.studies.plots import plot_checkpoints, plot_spread
from arc_submit.studies.render import RIGHT, WRONG, OutputView, png_bytes, task_image, text_image
from tests.conftest import run_cli


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_a_task_picture_has_the_size_its_grids_need_and_frames_right_and_wrong(tmp_path):
    task = Task("t", [Pair([[1]], [[1, 2, 3], [4, 5, 6]])], [Pair([[7]], [[8, 9]])])
    image = task_image(task, [OutputView([[[8, 9]], [[0]]], [[8, 9]])])
    # grids are rows*13+1 by cols*13+1 pixels; attempts get a 3-pixel frame; 10 pixels between things;
    # each grid has its label above it (7 pixels and 3 of gap), as wide as 6 pixels a character, less 1
    def part(height: int, width: int, label: str) -> tuple[int, int]:
        return 10 + height, max(width, 6 * len(label) - 1)

    train = [part(14, 14, "TRAIN 1 IN"), part(27, 40, "OUT")]
    test = [part(14, 14, "TEST 1 IN"), part(20, 33, "ATTEMPT 1"), part(20, 20, "ATTEMPT 2"), part(14, 27, "TRUTH")]
    rows = [(max(h for h, _ in parts), sum(w for _, w in parts) + 10 * (len(parts) - 1)) for parts in (train, test)]
    expected = (rows[0][0] + 10 + rows[1][0] + 20, max(w for _, w in rows) + 20)
    assert image.shape[:2] == expected
    data = png_bytes(image)
    assert png_size(data) == (expected[1], expected[0])
    path = tmp_path / "task.png"
    path.write_bytes(data)
    decoded = matplotlib.image.imread(path)
    assert decoded.shape[:2] == expected
    top = 10 + rows[0][0] + 10  # the test row starts here: labels, then the grids 10 pixels lower
    assert (image[10: 17, 10: 10 + 59] == text_image("TRAIN 1 IN")).all()
    assert (image[top: top + 7, 10 + 53 + 10: 10 + 53 + 10 + 53] == text_image("ATTEMPT 1")).all()
    assert (image[top: top + 7, 10 + 3 * 63: 10 + 3 * 63 + 29] == text_image("TRUTH")).all()
    assert tuple(image[top + 10, 10 + 53 + 10]) == RIGHT  # attempt 1 is the truth: green frame
    assert tuple(image[top + 10, 10 + 2 * 63]) == WRONG  # attempt 2 is not: red frame


def test_labels_are_drawn_in_a_font_of_their_own():
    a, one = text_image("A"), text_image("1")
    assert a.shape == (7, 5, 3) and text_image("TRUTH").shape == (7, 29, 3)
    assert (a != 255).any() and not (a == one).all()  # ink, and another glyph per character


def test_plots_have_fixed_sizes(tmp_path):
    rows = [{"step": s, "score": s / 4, "vote_2": 0.5, "pass_n": 0.5, "accuracy": 0.2, "correct_pixels": 0.7,
             "correct_size": 1.0, "unanswered": 0.0, "vote_1": 0.25, "ttft_loss": 1 / s, "eval_loss": float("nan")}
            for s in (1, 2, 3)]
    plot_checkpoints(rows, tmp_path / "c.png")
    plot_spread(rows, tmp_path / "s.png")
    assert png_size((tmp_path / "c.png").read_bytes()) == (1200, 450)
    assert png_size((tmp_path / "s.png").read_bytes()) == (1000, 450)


def test_spread_and_table():
    rows = [{"score": 0.5, "accuracy": 0.1}, {"score": 1.0, "accuracy": 0.3}]
    stats = {row["statistic"]: row for row in spread(rows, ("score", "accuracy"))}
    assert stats["mean"]["score"] == 0.75 and stats["std"]["score"] == pytest.approx(0.353553, abs=1e-6)
    assert stats["min"]["accuracy"] == 0.1 and stats["max"]["accuracy"] == 0.3
    assert "0.7500" in format_table(list(stats.values()), "statistic", ("score",))


def test_checkpoint_steps_come_from_trainer_state_or_the_name(tmp_path):
    (tmp_path / "checkpoint-300").mkdir()
    assert checkpoint_step(str(tmp_path / "checkpoint-300")) == 300
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "trainer_state.json").write_text(json.dumps({"global_step": 900}))
    assert checkpoint_step(str(tmp_path / "final")) == 900 and checkpoint_step("smollm2-135m") is None


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.sections = [], 0

    def handle_starttag(self, tag, attrs):
        self.sections += tag == "section"
        self.links += [value for name, value in attrs if name in ("src", "href")]


def tiny_toml(tmp_path, model_dir):
    path = tmp_path / "tiny.toml"
    path.write_text(f'[model]\nname = "{model_dir}"\n[ttft]\nsteps = 2\nlora_rank = 4\nlora_alpha = 8.0\n'
                    'eval_every = 1\n[sampling]\nbackend = "transformers"\naugmentations = 2\nmax_new_tokens = 16\n')
    return path


@pytest.mark.slow
def test_report_is_one_self_contained_page(tiny_model_dir, tmp_path):
    run = run_cli("--config", str(tiny_toml(tmp_path, tiny_model_dir)), "--dataset", "arc-agi-1-eval", "--smallest",
                  "2", "--run-dir", str(tmp_path / "run"), "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    result = run_cli("report", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "run" / "report.html").read_text()
    parser = Links()
    parser.feed(page)
    assert parser.sections == 2 and parser.links and all(link.startswith("data:image/png;base64,") for link in parser.links)
    assert "<svg" in page and "Metrics" in page and "ttft_s" in page
    assert run_cli("report", str(tmp_path)).returncode == 2  # not a run dir: one clear line


@pytest.mark.slow
def test_evaluate_gives_a_row_per_checkpoint_and_a_plot(tiny_model_dir, tmp_path):
    import shutil

    for step in (10, 20):
        shutil.copytree(tiny_model_dir, tmp_path / "ckpt" / f"checkpoint-{step}")
    result = run_cli("evaluate", "--config", str(tiny_toml(tmp_path, tiny_model_dir)), "--dataset", "arc-agi-1-eval",
                     "--smallest", "1", "--model", str(tmp_path / "ckpt" / "checkpoint-10"), "--model",
                     str(tmp_path / "ckpt" / "checkpoint-20"), "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [row["step"] for row in rows] == [10, 20] and all(row["tasks"] == 1 for row in rows)
    run_metrics = json.loads((tmp_path / "eval" / "checkpoint-10-seed0" / "metrics.json").read_text())["summary"]
    assert rows[0]["score"] == run_metrics["score"] and rows[0]["unanswered"] == run_metrics["unanswered"]
    assert rows[0]["ttft_loss"] > 0 and rows[0]["eval_loss"] > 0
    assert png_size((tmp_path / "eval" / "checkpoints.png").read_bytes()) == (1200, 450)
    assert (tmp_path / "eval" / "metrics.csv").read_text().startswith("label,")
    assert len([line for line in result.stdout.splitlines() if line.startswith("checkpoint-")]) == 2


@pytest.mark.slow
def test_variability_gives_each_seed_and_the_spread(tiny_model_dir, tmp_path):
    result = run_cli("variability", "--seeds", "0", "1", "--config", str(tiny_toml(tmp_path, tiny_model_dir)),
                     "--dataset", "arc-agi-1-eval", "--smallest", "1", "--out", str(tmp_path / "var"))
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "var" / "variability.json").read_text())
    assert [run["seed"] for run in data["runs"]] == [0, 1]
    assert [row["statistic"] for row in data["spread"]] == ["mean", "std", "min", "max"]
    assert png_size((tmp_path / "var" / "variability.png").read_bytes()) == (1000, 450)
    assert "mean" in result.stdout and "std" in result.stdout
    task = json.loads((tmp_path / "var" / "seed0" / "challenges.json").read_text()).popitem()[0]
    line = next(line for line in result.stdout.splitlines() if line.startswith("tasks solved by some seed"))
    assert (task in line) == bool(data["solved_by_seeds"][task])  # unsolved tasks are not listed
    seeds = [json.loads((tmp_path / "var" / f"seed{s}" / "tasks" / f"{task}.json").read_text()) for s in (0, 1)]
    assert seeds[0]["ttft"]["losses"] != seeds[1]["ttft"]["losses"]  # other seeds, other draws
    assert run_cli("variability", "--seeds", "3", "--config", "smoke", "--dataset", "arc-agi-1-eval").returncode == 2


@pytest.mark.slow
def test_tokens_counts_each_encoder(tiny_model_dir):
    result = run_cli("tokens", "--model", str(tiny_model_dir), "--dataset", "arc-agi-2-eval", "--encoder",
                     "MinimalGridEncoder()", "--encoder", "RowNumberEncoder(MinimalGridEncoder())", "--max-seq-len", "8192")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])["rows"]
    assert rows[0]["mean"] < rows[1]["mean"]  # row numbers cost tokens (one token per character here)
    assert all(0 <= row["fit_8192"] <= 120 for row in rows)
    bad = run_cli("tokens", "--encoder", "Nope()", "--dataset", "arc-agi-2-eval")
    assert bad.returncode == 2 and "unknown encoder 'Nope'" in bad.stderr


def test_the_memory_estimate_counts_parameters_and_orders_what_costs_memory(tiny_model_dir):
    from arc_submit.config import load_config
    from arc_submit.model.resolve import EMBEDDED_ALIAS, resolve
    from arc_submit.run.memory import REFERENCE, Architecture, estimate

    for folder in (tiny_model_dir, resolve(EMBEDDED_ALIAS).base_dir):  # untied and tied embeddings
        from transformers import AutoModelForCausalLM

        real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(folder).parameters())
        assert Architecture.from_config(folder).parameters == pytest.approx(real, rel=0.01)
    base = load_config("kaggle-l4x4", ["ttft.gradient_checkpointing=false"])
    small, large = (estimate(REFERENCE[size], base, 22.5) for size in ("0.5B", "8B"))
    assert small["peak_gib"] < large["peak_gib"] and small["fits"] and not large["fits"]
    checkpointed = estimate(REFERENCE["4B"], load_config("kaggle-l4x4"), 22.5)
    assert checkpointed["activations_gib"] < estimate(REFERENCE["4B"], base, 22.5)["activations_gib"] / 5
    awake = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ["sampling.sleep_while_training=false"]), 22.5)
    assert awake["peak_gib"] == pytest.approx(checkpointed["training_gib"] + checkpointed["engine_gib"]
                                              + checkpointed["graphs_gib"])


def test_the_estimate_counts_vllms_reserve_and_the_scoring_log_softmax():
    """At an engine share of 0.4 (the old preset) a 4B model's weights and vLLM's reserve leave no KV cache
    for one prompt of 8,192 tokens, and nvarc's scoring at vLLM's default step of 8,192 tokens takes
    9.3 GiB beside the engine; the preset as it is fits, with the scoring bounded."""
    from arc_submit.config import load_config
    from arc_submit.run.memory import REFERENCE, estimate

    old = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", [
        "sampling.gpu_memory_utilization=0.4", "sampling.max_batched_tokens=0", 'voting.rule="nvarc"']), 22.5)
    assert old["full_prompts_in_kv_cache"] < 1 and old["scoring_gib"] == pytest.approx(9.27, abs=0.01)
    assert not old["fits"]
    now = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['voting.rule="nvarc"']), 22.5)
    assert now["fits"] and now["full_prompts_in_kv_cache"] >= 2 and now["scoring_gib"] < 1.2
    assert estimate(REFERENCE["4B"], load_config("kaggle-l4x4"), 22.5)["scoring_gib"] == 0  # vote scores nothing
    eager = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ["sampling.enforce_eager=true"]), 22.5)
    assert eager["engine_reserve_gib"] == pytest.approx(now["engine_reserve_gib"]) and eager["graphs_gib"] == 0


def test_cuda_graphs_come_outside_the_engines_share_and_the_margin_is_said():
    """vLLM 0.11 captures CUDA graphs after it sized its KV cache from gpu_memory_utilization: the graphs add to
    the sampling peak, they do not come out of the KV cache. Level 2 sleep keeps no host copy of the weights;
    LoRA serving sleeps at level 1, which keeps one."""
    from arc_submit.config import load_config
    from arc_submit.run.memory import GRAPHS_GIB, REFERENCE, estimate

    config = load_config("kaggle-l4x4", ['voting.rule="nvarc"'])
    row = estimate(REFERENCE["4B"], config, 22.5)
    eager = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['voting.rule="nvarc"', "sampling.enforce_eager=true"]),
                     22.5)
    assert row["kv_cache_gib"] == pytest.approx(eager["kv_cache_gib"])  # the share's KV cache: graphs or not
    assert row["sampling_gib"] == pytest.approx(eager["sampling_gib"] + GRAPHS_GIB)
    assert row["margin_gib"] == pytest.approx(22.5 - row["peak_gib"]) and row["host_gib"] == 0
    lora = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['sampling.adapter="lora"']), 22.5)
    assert lora["host_gib"] == pytest.approx(lora["weights_gib"])


def test_a_kv_cache_in_prompts_sizes_the_engine_whatever_its_share(tiny_model_dir):
    """sampling.kv_cache_prompts: the KV cache holds that many prompts of max_seq_len, the engine is its weights,
    reserve and that cache (the share no longer counts), and the bytes given to vLLM agree with the estimate."""
    from arc_submit.config import load_config
    from arc_submit.errors import UserError
    from arc_submit.model.load import kv_bytes_per_token
    from arc_submit.run.memory import GIB, REFERENCE, Architecture, estimate

    share = estimate(REFERENCE["4B"], load_config("kaggle-l4x4", ['voting.rule="nvarc"']), 22.5)
    for shares in ("0.5", "0.9"):
        config = load_config("kaggle-l4x4", ['voting.rule="nvarc"', "sampling.kv_cache_prompts=2",
                                             f"sampling.gpu_memory_utilization={shares}"])
        row = estimate(REFERENCE["4B"], config, 22.5)
        assert row["full_prompts_in_kv_cache"] == pytest.approx(2)
        assert row["kv_cache_gib"] == pytest.approx(2 * 8192 * 2 * 36 * 8 * 128 * 2 / GIB)  # 147,456 bytes a token
        assert row["engine_gib"] == pytest.approx(row["weights_gib"] + row["engine_reserve_gib"] + row["kv_cache_gib"])
        assert row["fits"] and row["margin_gib"] > share["margin_gib"] + 1  # 2 prompts: less than the share's 3.15
    arch = Architecture.from_config(tiny_model_dir)
    for dtype, width in (("float32", 4), ("bfloat16", 2)):
        assert kv_bytes_per_token(tiny_model_dir, dtype) == 2 * arch.layers * arch.kv_heads * arch.head_dim * width
    with pytest.raises(UserError, match="sampling.kv_cache_prompts"):
        load_config("kaggle-l4x4", ["sampling.kv_cache_prompts=-1"])
    from arc_submit.config import SamplingConfig
    from arc_submit.predict.vllm_sampler import kv_cache_bytes

    given = kv_cache_bytes(tiny_model_dir, "bfloat16", 2048, SamplingConfig(kv_cache_prompts=3))  # vLLM 0.11 and 0.32
    assert given == 3 * 2048 * kv_bytes_per_token(tiny_model_dir, "bfloat16")


def test_a_model_that_cannot_fit_the_gpu_is_refused_before_anything_loads(tmp_path, monkeypatch):
    """The check a run on CUDA makes first, on a 4B model's config.json and a T4's 15 GiB."""
    from types import SimpleNamespace

    import torch

    from arc_submit.config import load_config
    from arc_submit.errors import UserError
    from arc_submit.model.resolve import ResolvedModel
    from arc_submit.run.session import check_gpu_memory

    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 2560, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
        "num_hidden_layers": 36, "intermediate_size": 9728, "vocab_size": 151936, "tie_word_embeddings": True}))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(total_memory=15 * 2**30, name="Tesla T4"))
    with pytest.raises(UserError) as refused:
        check_gpu_memory(load_config("kaggle-t4x2"), ResolvedModel(tmp_path, None))
    message = str(refused.value)
    assert "\n" not in message and "does not fit Tesla T4 (15.0 GiB)" in message and "plan --memory" in message
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(total_memory=int(22.5 * 2**30), name="NVIDIA L4"))
    check_gpu_memory(load_config("kaggle-l4x4"), ResolvedModel(tmp_path, None))  # fits: no error


def test_plan_memory_prints_a_table_for_l4_and_t4():
    result = run_cli("plan", "--memory", "--config", "kaggle-l4x4", "--size", "0.5B", "--size", "4B")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])["memory"]
    assert [(row["model"], row["gpu"]) for row in rows] == [("Qwen2.5-0.5B", "L4"), ("Qwen2.5-0.5B", "T4"),
                                                            ("Qwen3-4B", "L4"), ("Qwen3-4B", "T4")]


def test_degraded_runs_are_counted_and_named_in_comparisons():
    from arc_submit.studies.evaluate import degraded_tasks, degraded_warning, format_table

    clean = {"modes": {"full": 8}, "degraded": {}}
    cut = {"modes": {"full": 5, "cut": 2, "fallback": 1}, "degraded": {"t1": "time budget"}}
    failed = {"modes": {"full": 8}, "degraded": {"t2": "sampling failed: out of memory"}}
    assert [degraded_tasks(s) for s in (clean, cut, failed)] == [0, 3, 1]
    rows = [{"label": "a", "degraded": 0}, {"label": "b", "degraded": 3}]
    assert degraded_warning(rows[:1]) is None
    assert degraded_warning(rows).startswith("warning: 1 of 2 runs degraded tasks") and "b (3)" in degraded_warning(rows)
    assert "degraded" in format_table(rows, "label").splitlines()[0]


def test_evaluations_run_without_a_time_budget_unless_given():
    import argparse

    from arc_submit.commands.studyflags import add_study_arguments, run_flags

    parser = argparse.ArgumentParser()
    add_study_arguments(parser)
    default = run_flags(parser.parse_args(["--dataset", "arc-agi-1-eval"]))
    given = run_flags(parser.parse_args(["--dataset", "arc-agi-1-eval", "--time-budget", "600"]))
    assert default[default.index("--time-budget") + 1] == "0.0" and given[given.index("--time-budget") + 1] == "600.0"


def test_variability_refuses_several_models_instead_of_running_the_last():
    result = run_cli("variability", "--seeds", "0", "1", "--model", "a", "--model", "b", "--dataset", "arc-agi-1-eval")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "variability takes one --model (got 2)" in lines[0]
    assert "evaluate --model A --model B --seeds" in lines[0]
