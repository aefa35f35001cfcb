"""Invertible augmentations of grids and tasks: the 8 rotations/reflections x colour permutations x
train-pair order, as small frozen values drawn from a `numpy.random.Generator`.

    aug = draw(np.random.default_rng(0), n_train=3)
    assert aug.invert_grid(aug.apply_grid(grid)) == grid
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arc_submit.data.tasks import Grid, Pair, Task

# The dihedral group of the square: each name maps an array to its transformed array.
TRANSFORMS = {
    "identity": lambda a: a,
    "rot90": lambda a: np.rot90(a, -1),  # clockwise
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 1),
    "flip_lr": lambda a: a[:, ::-1],
    "flip_ud": lambda a: a[::-1, :],
    "transpose": lambda a: a.T,
    "antitranspose": lambda a: np.rot90(a, 2).T,
}
INVERSE = {"rot90": "rot270", "rot270": "rot90"}  # every other transform is its own inverse
IDENTITY_COLOURS = tuple(range(10))


@dataclass(frozen=True)
class Augmentation:
    """A geometric transform, a colour permutation and a train-pair order.

    `colours[c]` is the colour that colour c becomes; `train_order[i]` is the index of the original
    train pair that comes i-th (None keeps the order).
    """

    transform: str = "identity"
    colours: tuple[int, ...] = IDENTITY_COLOURS
    train_order: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; known: {', '.join(TRANSFORMS)}")
        if sorted(self.colours) != list(IDENTITY_COLOURS):
            raise ValueError(f"colours {self.colours} is not a permutation of 0-9")
        if self.train_order is not None and sorted(self.train_order) != list(range(len(self.train_order))):
            raise ValueError(f"train_order {self.train_order} is not a permutation")

    def inverse(self) -> Augmentation:
        """The augmentation that undoes this one."""
        colours = [0] * 10
        for colour, new in enumerate(self.colours):
            colours[new] = colour
        order = None
        if self.train_order is not None:
            order = tuple(int(i) for i in np.argsort(self.train_order))
        return Augmentation(INVERSE.get(self.transform, self.transform), tuple(colours), order)

    def apply_grid(self, grid: Grid) -> Grid:
        array = np.asarray(self.colours)[np.asarray(grid, dtype=np.int64)]
        return TRANSFORMS[self.transform](array).tolist()

    def invert_grid(self, grid: Grid) -> Grid:
        return self.inverse().apply_grid(grid)

    def apply_task(self, task: Task) -> Task:
        """The task with every grid transformed and the train pairs reordered."""
        train = [self._apply_pair(pair) for pair in task.train]
        if self.train_order is not None:
            if len(self.train_order) != len(train):
                raise ValueError(f"train_order has {len(self.train_order)} places, task has {len(train)} pairs")
            train = [train[i] for i in self.train_order]
        return Task(task.task_id, train, [self._apply_pair(pair) for pair in task.test])

    def _apply_pair(self, pair: Pair) -> Pair:
        output = None if pair.output is None else self.apply_grid(pair.output)
        return Pair(self.apply_grid(pair.input), output)

    def to_dict(self) -> dict:
        return {"transform": self.transform, "colours": list(self.colours), "train_order": self.train_order}

    @classmethod
    def from_dict(cls, data: dict) -> Augmentation:
        order = data.get("train_order")
        return cls(data["transform"], tuple(data["colours"]), None if order is None else tuple(order))



def draw(
    rng: np.random.Generator,
    n_train: int | None = None,
    *,
    geometric: bool = True,
    permute_colours: bool = True,
    keep_background: bool = True,
    shuffle_train: bool = True,
    move_background: float = 0.0,
) -> Augmentation:
    """A random augmentation. `keep_background` keeps colour 0 fixed (except with probability
    `move_background`); `n_train` sizes the pair order."""
    names = list(TRANSFORMS)
    transform = names[int(rng.integers(len(names)))] if geometric else "identity"
    colours = _draw_colours(rng, keep_background, move_background) if permute_colours else IDENTITY_COLOURS
    order = None
    if shuffle_train and n_train is not None:
        order = tuple(int(i) for i in rng.permutation(n_train))
    return Augmentation(transform, colours, order)


def _draw_colours(rng: np.random.Generator, keep_background: bool, move_background: float) -> tuple[int, ...]:
    """A colour permutation; colour 0 stays unless the background may move (and the draw says so)."""
    if keep_background and move_background > 0 and rng.random() < move_background:
        keep_background = False
    first = 1 if keep_background else 0
    return tuple(range(first)) + tuple(int(c) for c in rng.permutation(np.arange(first, 10)))


def balanced_views(rng: np.random.Generator, count: int, n_train: int | None = None, *, geometric: bool = True,
                   permute_colours: bool = True, keep_background: bool = True, shuffle_train: bool = True,
                   move_background: float = 0.0) -> list[Augmentation]:
    """`count` views of a task: the identity first, then each of the 8 rotations/reflections in turn (in a
    drawn order), so each appears floor(count/8) or ceil(count/8) times; a colour permutation and a train
    order drawn per view, repeats of (transform, colours) avoided while the space allows."""
    others = [name for name in TRANSFORMS if name != "identity"]
    order = ["identity"] + [others[int(i)] for i in rng.permutation(len(others))] if geometric else ["identity"]
    views = [Augmentation(train_order=None if n_train is None else tuple(range(n_train)))][:count]
    seen = {(views[0].transform, views[0].colours)} if views else set()
    for index in range(1, count):
        transform = order[index % len(order)]
        colours = IDENTITY_COLOURS
        for _ in range(20):
            if permute_colours:
                colours = _draw_colours(rng, keep_background, move_background)
            if (transform, colours) not in seen:
                break
        seen.add((transform, colours))
        train_order = tuple(int(i) for i in rng.permutation(n_train)) if shuffle_train and n_train is not None else None
        views.append(Augmentation(transform, colours, train_order))
    return views


def draw_distinct(rng: np.random.Generator, count: int, n_train: int | None = None, **options) -> list[Augmentation]:
    """`count` augmentations, the identity first, then draws (repeats avoided while the space allows)."""
    chosen = [Augmentation(train_order=None if n_train is None else tuple(range(n_train)))][:count]
    seen = {(a.transform, a.colours) for a in chosen}
    for _ in range(count * 20):
        if len(chosen) == count:
            break
        candidate = draw(rng, n_train, **options)
        if (candidate.transform, candidate.colours) not in seen:
            seen.add((candidate.transform, candidate.colours))
            chosen.append(candidate)
    while len(chosen) < count:
        chosen.append(draw(rng, n_train, **options))
    return chosen
