"""Configuration: the strategy names config accepts are exactly the registries' names (config sits below
the wings that hold the registries, so it lists the names itself); configs laid one over the other; the
winners' recipes."""

from __future__ import annotations

import pytest

from arc_submit import config
from arc_submit.errors import UserError
from arc_submit.model.schedules import SCHEDULES
from arc_submit.predict.backends import BACKENDS
from arc_submit.predict.selection import RULES


def test_config_names_match_the_registries():
    assert set(config.SCHEDULES) == set(SCHEDULES)
    assert set(config.VOTING_RULES) == set(RULES)
    assert set(config.SAMPLING_BACKENDS) == set(BACKENDS)


def test_configs_joined_by_plus_are_laid_one_over_the_other(tmp_path):
    from arc_submit.config import load_config

    laid = load_config("kaggle-l4x4+nvarc")
    assert (laid.prompt.format, laid.ttft.lora_rank, laid.voting.rule) == ("nvarc", 256, "nvarc")  # the recipe's
    assert laid.sampling.max_batched_tokens == 1024 and laid.sampling.sleep_while_training  # the GPU preset's, same table
    assert load_config("cpu+nvarc").ttft.steps == 128 and load_config("nvarc+cpu").ttft.steps == 48  # the last wins
    odd = tmp_path / "a+b.toml"  # a file whose name holds a '+' is one file
    odd.write_text("[ttft]\nsteps = 3\n")
    assert load_config(str(odd)).ttft.steps == 3
    with pytest.raises(UserError, match="--config nope: not a preset"):
        load_config("cpu+nope")


@pytest.mark.parametrize("name", ["nvarc", "architects"])
def test_the_winners_recipes_load_and_cite_their_values(name):
    from importlib import resources

    from arc_submit.config import load_config

    config = load_config(name)
    assert config.prompt.format == name and config.ttft.loss == "outputs" and config.ttft.rslora
    assert config.sampling.method == "dfs" and config.sampling.max_candidates * config.sampling.min_prob <= 1
    text = resources.files("arc_submit.presets").joinpath(f"{name}.toml").read_text()
    settings = [line for line in text.splitlines() if "=" in line and not line.startswith("#") and "[" not in line[:1]]
    uncited = [line for line in settings if "#" not in line and not line.strip().startswith("target_modules")]
    assert not uncited, f"values without their source: {uncited}"


def test_a_layer_whose_path_holds_a_plus_and_a_system_prompt_where_the_format_fixes_its_text(tmp_path):
    from arc_submit.config import load_config

    odd = tmp_path / "my+recipe.toml"
    odd.write_text("[ttft]\nsteps = 5\n")
    assert load_config(f"cpu+{odd}").ttft.steps == 5 and load_config(f"{odd}+cpu").ttft.steps == 48
    with pytest.raises(UserError, match="prompt format nvarc fixes its own text, with no system message"):
        load_config("nvarc", ['prompt.system_prompt="Solve it."'])


def test_a_block_size_off_the_kv_caches_grid_is_refused():
    with pytest.raises(UserError, match="sampling.block_size"):
        config.load_config("cpu", ["sampling.block_size=20"])
    assert config.load_config("cpu", ["sampling.block_size=64"]).sampling.block_size == 64
