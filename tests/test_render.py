"""studies/render.py: a task's picture has the size its grids need, each grid labelled in a font of its own, and
attempts framed green when right and red when wrong; the PNG decodes to the same size."""

from __future__ import annotations

import matplotlib.image

from arc_submit.data.tasks import Pair, Task
from arc_submit.studies.render import RIGHT, WRONG, OutputView, png_bytes, task_image, text_image
from tests.helpers.studies import png_size


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
