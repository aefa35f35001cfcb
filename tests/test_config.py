"""Configuration: the strategy names config accepts are exactly the registries' names (config sits below
the wings that hold the registries, so it lists the names itself); configs laid one over the other; the
winners' recipes."""

from __future__ import annotations

import pytest

from arc_submit import config
from arc_submit.errors import UserError
from arc_submit.model.schedules import SCHEDULES
from arc_submit.predict.sampler import BACKENDS
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


# ----------------------------------------------------------------------------- the config command and docs/config.md


def _every_field(table, prefix: str):
    """(key, help, declared by the table's own class) for every setting under `table`, nested tables walked."""
    from dataclasses import fields, is_dataclass

    own = vars(type(table)).get("__annotations__", {})
    for field in fields(table):
        value = getattr(table, field.name)
        if is_dataclass(value):
            inner = _every_field(value, f"{prefix}{field.name}.")
            yield from ((key, help, field.name in own) for key, help, _ in inner)
        else:
            yield f"{prefix}{field.name}", field.metadata["help"], field.name in own


def _settings_printed(stdout: str) -> dict[str, str]:
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("# --config ")
    return {line.split(" = ")[0]: line for line in lines[1:]}


def test_config_prints_every_setting_with_its_default_and_help_as_toml_that_reads_back(tmp_path):
    from tests.helpers.cli import run_cli

    result = run_cli("config", "--config", "cpu")
    assert result.returncode == 0, result.stderr
    printed = _settings_printed(result.stdout)
    expected = [(f"{section}.{key}", help, own) for section in ("model", "prompt", "ttft", "sampling", "voting", "run",
                                                                "train")
                for key, help, own in _every_field(getattr(config.Config(), section), "")]
    assert len(printed) == len(expected)  # one line per setting, no more
    for key, help, own in expected:
        inherited = key.startswith("train.") and not own
        said = f"as ttft.{key.removeprefix('train.')}" if inherited else help  # train names ttft's, once
        assert printed[key].endswith(said) and "  # default " in printed[key], (key, printed[key])
    assert printed["ttft.steps"] == ("ttft.steps = 48  # default 100; optimizer steps per task (0 = no test-time "
                                     "fine-tuning)")
    saved = tmp_path / "printed.toml"
    saved.write_text(result.stdout)
    assert config.load_config(str(saved)) == config.load_config("cpu")  # every value, as TOML


def _flat(table: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def test_config_diff_shows_what_the_preset_and_set_change():
    from tests.helpers.cli import run_cli

    defaults = _flat(config.Config().to_dict())
    preset = _flat(config.read_toml("cpu")[0])
    result = run_cli("config", "--config", "cpu", "--diff")
    assert result.returncode == 0, result.stderr
    assert set(_settings_printed(result.stdout)) == {key for key, value in preset.items() if value != defaults[key]}
    assert {"model.dtype", "ttft.steps", "run.time_budget"} <= set(_settings_printed(result.stdout))
    assert "model.name" not in _settings_printed(result.stdout)  # the preset sets it, to the default

    result = run_cli("config", "--config", "cpu", "--diff", "--set", "ttft.steps=7", "--set", "train.lora_rank=4",
                     "--set", "sampling.augmentations=8")
    printed = _settings_printed(result.stdout)
    assert printed["ttft.steps"].startswith("ttft.steps = 7  # default 100;")
    assert printed["train.lora_rank"] == "train.lora_rank = 4  # default 32; as ttft.lora_rank"
    assert "sampling.augmentations" not in printed  # set to its default
    assert result.stdout.startswith("# --config cpu --set ttft.steps=7 --set train.lora_rank=4 --set "
                                    "sampling.augmentations=8: the 9 of ")


@pytest.mark.parametrize("args, said", [
    (["--set", "ttft.stepz=3"], "unknown setting 'stepz' (did you mean 'steps'?)"),
    (["--set", "train.lora_rank=0"], "train.lora_rank = 0: 1 or more"),
    (["--markdown", "--config", "cpu"], "--markdown documents the defaults and every preset at once"),
])
def test_config_refuses_a_wrong_setting_in_one_line(args, said):
    from tests.helpers.cli import run_cli

    result = run_cli("config", *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and said in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_train_holds_every_ttft_setting_once():
    from arc_submit.config_reference import describe

    ttft = {key for key, _, _ in _every_field(config.TTFTConfig(), "")}
    train = {key: own for key, _, own in _every_field(config.TrainConfig(), "")}
    assert ttft <= set(train)  # every TTFT setting is read under [train] too, by the same key
    assert {key for key, own in train.items() if own} == {"steps", "scope", "method", "val_tasks", "eval_every",
                                                           "eval_examples", "save_every", "log_every", "wandb"}
    same_as = {s.key: s.same_as for s in describe(config.Config()) if s.key.startswith("train.")}
    assert same_as["train.augment.geometric"] == "ttft.augment.geometric" and same_as["train.method"] == ""
    assert config.load_config("cpu", ["train.learning_rate=0.002"]).train.learning_rate == 0.002


def test_docs_config_md_is_current():
    from arc_submit.config_reference import PAGE_COMMAND, markdown
    from tests.helpers.cli import ROOT

    page = ROOT / "docs" / "config.md"
    if not page.is_file() or page.read_bytes() != markdown().encode("utf-8"):
        pytest.fail(f"docs/config.md is not what config.py and the presets give: regenerate it with `{PAGE_COMMAND}`",
                    pytrace=False)
    text = page.read_text(encoding="utf-8")
    assert text.count("peak learning rate") == 1  # train's inherited settings are named, not repeated
    for key, _, _ in _every_field(config.Config(), ""):
        assert f"`{key}`" in text, key


RENAMED = [("sampling", "views", "view_draw", '"random"', "random"), ("voting", "views", "scoring_views", "3", 3)]


@pytest.mark.parametrize("section, old, new, written, value", RENAMED)
def test_a_renamed_setting_is_read_under_its_old_name_with_a_warning(section, old, new, written, value, tmp_path,
                                                                        caplog):
    """For one release, TOML files and --set lines that use a setting's old name keep working, and say the new
    name in one line; both names at once are refused."""
    import logging

    toml = tmp_path / "old.toml"
    toml.write_text(f"[{section}]\n{old} = {written}\n")
    for loaded in (lambda: config.load_config(str(toml)),
                   lambda: config.load_config(None, [f"{section}.{old}={written}"])):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="arc_submit"):
            assert getattr(getattr(loaded(), section), new) == value
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and f"{section}.{old}: renamed {section}.{new}" in said[0] and "\n" not in said[0]
    with pytest.raises(UserError, match=f"both '{old}' and '{new}'"):
        config.load_config(None, [f"{section}.{old}={written}", f"{section}.{new}={written}"])
    assert f"{new} =" in config.to_toml(config.load_config(str(toml))) and f"\n{old} =" not in config.to_toml(
        config.load_config(str(toml)))
