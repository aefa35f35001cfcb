"""Configuration: the strategy names config accepts are exactly the registries' names (config sits below
the wings that hold the registries, so it lists the names itself)."""

from __future__ import annotations

from arc_submit import config
from arc_submit.model.schedules import SCHEDULES
from arc_submit.predict.backends import BACKENDS
from arc_submit.predict.selection import RULES


def test_config_names_match_the_registries():
    assert set(config.SCHEDULES) == set(SCHEDULES)
    assert set(config.VOTING_RULES) == set(RULES)
    assert set(config.SAMPLING_BACKENDS) == set(BACKENDS)
