"""Pictures of ARC tasks in the ARC palette: grids and whole tasks as PNG (numpy + zlib, no plotting
library), with attempts framed green when right and red when wrong, and each grid labelled above it
(TRAIN 1 IN, OUT, TEST 1 IN, ATTEMPT 1, ATTEMPT 2, TRUTH) in a 5x7 pixel font of our own.

    python -m arc_submit render --challenges challenges.json --submission submission.json \
        --solutions solutions.json --out pictures/
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from arc_submit.data.tasks import Grid, Task, is_grid

PALETTE = np.array([
    (0x00, 0x00, 0x00), (0x00, 0x74, 0xD9), (0xFF, 0x41, 0x36), (0x2E, 0xCC, 0x40), (0xFF, 0xDC, 0x00),
    (0xAA, 0xAA, 0xAA), (0xF0, 0x12, 0xBE), (0xFF, 0x85, 0x1B), (0x7F, 0xDB, 0xFF), (0x87, 0x0C, 0x25),
], dtype=np.uint8)
LINE = (0x44, 0x44, 0x44)
BACKGROUND = (0xFF, 0xFF, 0xFF)
RIGHT, WRONG, EMPTY = (0x2E, 0xCC, 0x40), (0xFF, 0x41, 0x36), (0xDD, 0xDD, 0xDD)

CELL = 12  # pixels per cell, plus a 1-pixel line between cells
GAP = 10  # pixels between grids and between rows of grids
FRAME = 3  # width of the right/wrong frame around an attempt


# 5x7 glyphs of the characters the labels use, row by row ('#' = ink)
GLYPHS = {
    " ": ".....|.....|.....|.....|.....|.....|.....",
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#", "E": "#####|#....|#....|####.|#....|#....|#####",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#", "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
    "M": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#", "N": "#...#|##..#|#.#.#|#..##|#...#|#...#|#...#",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.", "P": "####.|#...#|#...#|####.|#....|#....|#....",
    "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#", "S": ".####|#....|#....|.###.|....#|....#|####.",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..", "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
    "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.", "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####", "3": "####.|....#|....#|.###.|....#|....#|####.",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.", "5": "#####|#....|####.|....#|....#|#...#|.###.",
    "6": "..##.|.#...|#....|####.|#...#|#...#|.###.", "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.", "9": ".###.|#...#|#...#|.####|....#|...#.|.##..",
}
GLYPH_HEIGHT, GLYPH_WIDTH, LABEL_GAP = 7, 5, 3  # pixels; a label sits LABEL_GAP pixels above its grid


def text_image(text: str) -> np.ndarray:
    """`text` (the characters of GLYPHS) in LINE on white, one pixel between characters."""
    width = len(text) * (GLYPH_WIDTH + 1) - 1
    image = np.empty((GLYPH_HEIGHT, max(1, width), 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for index, char in enumerate(text):
        for row, bits in enumerate(GLYPHS[char].split("|")):
            for col, bit in enumerate(bits):
                if bit == "#":
                    image[row, index * (GLYPH_WIDTH + 1) + col] = LINE
    return image


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """`image` with `text` above it, left-aligned, on white."""
    label = text_image(text)
    out = np.empty((GLYPH_HEIGHT + LABEL_GAP + image.shape[0], max(label.shape[1], image.shape[1]), 3), dtype=np.uint8)
    out[:] = BACKGROUND
    out[:GLYPH_HEIGHT, : label.shape[1]] = label
    out[GLYPH_HEIGHT + LABEL_GAP:, : image.shape[1]] = image
    return out


def grid_size(grid: Grid, cell: int = CELL) -> tuple[int, int]:
    """(height, width) in pixels of a grid image: cells plus the lines around them."""
    return len(grid) * (cell + 1) + 1, len(grid[0]) * (cell + 1) + 1


def grid_image(grid: Grid, cell: int = CELL) -> np.ndarray:
    """An RGB image of the grid (uint8, height x width x 3)."""
    height, width = grid_size(grid, cell)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = LINE
    colours = PALETTE[np.asarray(grid, dtype=np.int64)]
    for r in range(len(grid)):
        top = 1 + r * (cell + 1)
        for c in range(len(grid[0])):
            left = 1 + c * (cell + 1)
            image[top: top + cell, left: left + cell] = colours[r, c]
    return image


def framed(image: np.ndarray, colour: tuple[int, int, int], width: int = FRAME) -> np.ndarray:
    out = np.empty((image.shape[0] + 2 * width, image.shape[1] + 2 * width, 3), dtype=np.uint8)
    out[:] = colour
    out[width: width + image.shape[0], width: width + image.shape[1]] = image
    return out


def placeholder(size: int = 3 * (CELL + 1) + 1) -> np.ndarray:
    """A light square standing for 'no answer' (an empty attempt)."""
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = EMPTY
    return image


def stack_row(images: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Images side by side, top-aligned, `gap` pixels apart, on white."""
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    left = 0
    for image in images:
        out[: image.shape[0], left: left + image.shape[1]] = image
        left += image.shape[1] + gap
    return out


def stack_column(images: list[np.ndarray], gap: int = GAP, margin: int = GAP) -> np.ndarray:
    """Images one under another, left-aligned, with a white margin around the whole."""
    height = sum(image.shape[0] for image in images) + gap * (len(images) - 1) + 2 * margin
    width = max(image.shape[1] for image in images) + 2 * margin
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    top = margin
    for image in images:
        out[top: top + image.shape[0], margin: margin + image.shape[1]] = image
        top += image.shape[0] + gap
    return out


def attempt_image(attempt: Grid, truth: Grid | None) -> np.ndarray:
    image = grid_image(attempt) if attempt else placeholder()
    if truth is None:
        return framed(image, BACKGROUND)
    return framed(image, RIGHT if attempt == truth else WRONG)


@dataclass(frozen=True)
class OutputView:
    """What to draw for one test input: the attempts (if any) and the truth (if known)."""

    attempts: list[Grid]
    truth: Grid | None


def task_image(task: Task, views: list[OutputView] | None = None) -> np.ndarray:
    """A task as one image: a row per train pair (input, output), then a row per test input
    (input, each attempt framed green/red against the truth, the truth), each grid labelled."""
    rows = [stack_row([labelled(grid_image(pair.input), f"TRAIN {index + 1} IN"), labelled(grid_image(pair.output), "OUT")])
            for index, pair in enumerate(task.train)]
    for index, pair in enumerate(task.test):
        view = views[index] if views else OutputView([], pair.output)
        parts = [labelled(grid_image(pair.input), f"TEST {index + 1} IN")]
        parts += [labelled(attempt_image(a, view.truth), f"ATTEMPT {k + 1}") for k, a in enumerate(view.attempts)]
        if view.truth is not None:
            parts.append(labelled(grid_image(view.truth), "TRUTH"))
        rows.append(stack_row(parts))
    return stack_column(rows)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an RGB uint8 image as PNG (8-bit truecolour, no filtering)."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def views_for(task: Task, entries: object) -> list[OutputView]:
    """TestViews from a task's submission entries (if any) and its known solutions; an attempt that is
    not a valid grid is drawn as 'no answer'."""
    views = []
    for i, pair in enumerate(task.test):
        entry = entries[i] if isinstance(entries, list) and i < len(entries) else None
        if not isinstance(entry, dict):
            views.append(OutputView([], pair.output))
            continue
        attempts = [entry.get(key, []) for key in ("attempt_1", "attempt_2")]
        views.append(OutputView([a if is_grid(a) else [] for a in attempts], pair.output))
    return views
