"""Grids and small tasks made by hand: a hypothesis strategy for grids, a task of a few train pairs, and FLIP
(three train pairs, each row reversed), which TTFT learns on the tiny model."""

from __future__ import annotations

from hypothesis import strategies as st

from arc_submit.data.tasks import Pair, Task

FLIP = Task("flip", [Pair([[1, 2, 3]], [[3, 2, 1]]), Pair([[4, 5, 6]], [[6, 5, 4]]), Pair([[7, 8, 9]], [[9, 8, 7]])],
            [Pair([[1, 5, 9]], [[9, 5, 1]])])


@st.composite
def grids(draw, max_side: int = 30):
    rows = draw(st.integers(1, max_side))
    cols = draw(st.integers(1, max_side))
    cells = st.lists(st.integers(0, 9), min_size=cols, max_size=cols)
    return draw(st.lists(cells, min_size=rows, max_size=rows))


def make_task(task_id: str = "t1", n_train: int = 3, with_solution: bool = True) -> Task:
    train = [Pair([[i, 1], [2, 3]], [[3, 2], [1, i]]) for i in range(n_train)]
    test = [Pair([[5, 6, 7]], [[7, 6, 5]] if with_solution else None)]
    return Task(task_id, train, test)
