"""Augmentations: invert(apply(x)) == x for grids and tasks; task pairs stay consistent; draws are seeded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_submit.data.augment import TRANSFORMS, Augmentation, draw, draw_distinct
from arc_submit.data.tasks import Pair, Task, load_dataset
from tests.helpers.tasks import grids, make_task

augmentations = st.builds(
    Augmentation,
    transform=st.sampled_from(list(TRANSFORMS)),
    colours=st.permutations(list(range(10))).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(grid=grids(), augmentation=augmentations)
def test_invert_apply_is_identity_on_grids(grid, augmentation):
    assert augmentation.invert_grid(augmentation.apply_grid(grid)) == grid
    assert augmentation.apply_grid(augmentation.invert_grid(grid)) == grid


def test_the_eight_transforms_are_distinct_and_keep_cells():
    grid = [[1, 2, 3], [4, 5, 6]]
    images = {name: Augmentation(name).apply_grid(grid) for name in TRANSFORMS}
    assert len({str(image) for image in images.values()}) == 8
    for image in images.values():
        assert sorted(c for row in image for c in row) == [1, 2, 3, 4, 5, 6]
    assert images["rot90"] == [[4, 1], [5, 2], [6, 3]]  # clockwise
    assert images["transpose"] == [[1, 4], [2, 5], [3, 6]]


def test_identity_is_one_of_them():
    grid = [[1, 2], [3, 4]]
    identity = Augmentation()
    assert identity.apply_grid(grid) == grid and identity.inverse() == identity


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_train=st.integers(1, 6), keep=st.booleans())
def test_task_augmentation_keeps_pairs_consistent_and_inverts(seed, n_train, keep):
    task = Task("t", [Pair([[i, 1, 2]], [[i], [3]]) for i in range(n_train)], [Pair([[4, 5]], [[5, 4]])])
    augmentation = draw(np.random.default_rng(seed), n_train, keep_background=keep)
    augmented = augmentation.apply_task(task)
    for new_pair, old_index in zip(augmented.train, augmentation.train_order):
        old = task.train[old_index]
        assert new_pair.input == augmentation.apply_grid(old.input)
        assert new_pair.output == augmentation.apply_grid(old.output)
    assert augmented.test[0].output == augmentation.apply_grid(task.test[0].output)
    assert augmentation.inverse().apply_task(augmented) == task
    if keep:
        assert augmentation.colours[0] == 0


def test_real_tasks_round_trip_under_drawn_augmentations():
    rng = np.random.default_rng(7)
    for task in load_dataset("arc-agi-2-eval")[:40]:
        augmentation = draw(rng, len(task.train), keep_background=False)
        assert augmentation.inverse().apply_task(augmentation.apply_task(task)) == task


def test_draws_are_seeded_and_vary():
    first = [draw(np.random.default_rng(3), 4) for _ in range(2)]
    assert first[0] == first[1]
    many = {draw(np.random.default_rng(seed), 4) for seed in range(50)}
    assert len(many) > 40


def test_draw_distinct_starts_with_identity_and_avoids_repeats():
    augmentations = draw_distinct(np.random.default_rng(0), 8, n_train=3, permute_colours=False)
    assert augmentations[0] == Augmentation(train_order=(0, 1, 2))
    assert len({a.transform for a in augmentations}) == 8


def test_serialised_augmentation_round_trips():
    augmentation = draw(np.random.default_rng(1), 3)
    assert Augmentation.from_dict(augmentation.to_dict()) == augmentation


@pytest.mark.parametrize(
    "kwargs", [{"transform": "spin"}, {"colours": (0,) * 10}, {"train_order": (0, 0)}]
)
def test_invalid_augmentations_are_refused(kwargs):
    with pytest.raises(ValueError):
        Augmentation(**kwargs)


def test_wrong_train_order_length_is_refused():
    with pytest.raises(ValueError, match="train_order"):
        Augmentation(train_order=(1, 0)).apply_task(make_task(n_train=3))
