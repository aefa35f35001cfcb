"""Grid <-> text encoders, composable, built from a spec string by a small parser (never `eval`).

    >>> encoder = create("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))")
    >>> encoder.encode([[0, 1, 2], [3, 4, 5]])
    '```grid shape: 2x3\\n1 012\\n2 345\\n```'
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

from arc_submit.data.tasks import MAX_SIDE, Grid

DEFAULT_ENCODER = "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))"
DIGITS = "0123456789"
SYMBOLS = "ñò÷ûąćďęĚĞ"  # one token each in Llama and Qwen tokenizers, part of no other token


class DecodeError(ValueError):
    """Text that is not a valid grid in an encoder's format; the message says why, and `kind` names the
    sort of problem (records count unparsed answers by it)."""

    KINDS = ("not_fenced", "header", "row_number", "not_a_digit", "shape")

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class GridEncoder(ABC):
    """Turns a grid into text and back. `decode(encode(g)) == g` for every valid grid g."""

    @abstractmethod
    def encode(self, grid: Grid) -> str: ...

    def decode(self, text: str) -> Grid:
        """The grid in `text`: surrounding whitespace is ignored, and for fenced encoders whatever follows
        the closing fence; DecodeError when it is not a grid."""
        return self.decode_exact(self.answer_part(text.strip()))

    def answer_part(self, text: str) -> str:
        """The part of a model's text that holds the answer (all of it, unless the format marks its end)."""
        return text

    @abstractmethod
    def decode_exact(self, text: str) -> Grid:
        """The grid in `text`, which must be exactly what `encode` writes."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The string `create` turns back into this encoder."""

    def __repr__(self) -> str:
        return self.spec

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GridEncoder) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)


class WrappingEncoder(GridEncoder):
    """An encoder that rewrites the text of an inner encoder."""

    def __init__(self, inner: GridEncoder):
        self.inner = inner

    @property
    def spec(self) -> str:
        return f"{type(self).__name__}({self.inner.spec})"

    def answer_part(self, text: str) -> str:
        return self.inner.answer_part(text) if self.keeps_lines else text

    keeps_lines = False  # True when this wrapper leaves the inner text's lines as they are (symbols only)


def check_grid(rows: list[list[int]]) -> Grid:
    """`rows` if they form a valid grid (1-30 rectangular rows of 1-30 cells), else DecodeError."""
    if not 1 <= len(rows) <= MAX_SIDE:
        raise DecodeError(f"{len(rows)} rows; a grid has 1 to {MAX_SIDE}", "shape")
    width = len(rows[0])
    if not 1 <= width <= MAX_SIDE:
        raise DecodeError(f"{width} columns; a grid has 1 to {MAX_SIDE}", "shape")
    for number, row in enumerate(rows):
        if len(row) != width:
            raise DecodeError(f"row {number} has {len(row)} cells but row 0 has {width}", "shape")
    return rows


class MinimalGridEncoder(GridEncoder):
    """Rows of digits without separators, joined by newlines: `012\\n345`."""

    spec = "MinimalGridEncoder()"

    def encode(self, grid: Grid) -> str:
        return "\n".join("".join(DIGITS[cell] for cell in row) for row in grid)

    def decode_exact(self, text: str) -> Grid:
        rows = []
        for number, line in enumerate(text.split("\n")):
            bad = next((ch for ch in line if ch not in DIGITS), None)
            if bad is not None:
                raise DecodeError(f"row {number}: {bad!r} is not a digit 0-9", "not_a_digit")
            rows.append([DIGITS.index(ch) for ch in line])
        return check_grid(rows)


class RowNumberEncoder(WrappingEncoder):
    """Each line of the inner text prefixed by its 1-based number and a space: `1 012\\n2 345`."""

    def encode(self, grid: Grid) -> str:
        lines = self.inner.encode(grid).split("\n")
        return "\n".join(f"{number} {line}" for number, line in enumerate(lines, start=1))

    def decode_exact(self, text: str) -> Grid:
        lines = []
        for number, line in enumerate(text.split("\n"), start=1):
            prefix = f"{number} "
            if not line.startswith(prefix):
                raise DecodeError(f"line {number} does not start with its row number {prefix!r}: {line[:40]!r}",
                                  "row_number")
            lines.append(line[len(prefix):])
        return self.inner.decode_exact("\n".join(lines))


class FencedEncoder(WrappingEncoder):
    """The inner text in a fenced block ```` ```<header>\\n...\\n``` ````; subclasses say the header."""

    def header(self, grid: Grid) -> str:
        raise NotImplementedError

    def check_header(self, header: str, grid: Grid) -> None:
        if header != self.header(grid):
            raise DecodeError(f"block header {header!r}, expected {self.header(grid)!r}", "header")

    def encode(self, grid: Grid) -> str:
        return f"```{self.header(grid)}\n{self.inner.encode(grid)}\n```"

    def answer_part(self, text: str) -> str:
        """Up to the closing fence: what a model writes after it is not part of the answer."""
        lines, depth = text.split("\n"), fence_depth(self)
        closings = [i for i in range(1, len(lines)) if lines[i] == "```"]
        return text if len(closings) < depth else "\n".join(lines[: closings[depth - 1] + 1])

    def decode_exact(self, text: str) -> Grid:
        lines = text.split("\n")
        if len(lines) < 3 or not lines[0].startswith("```") or lines[-1] != "```":
            raise DecodeError("not a fenced block: expected a ``` header line, the grid, and a closing ```",
                              "not_fenced")
        grid = self.inner.decode_exact("\n".join(lines[1:-1]))
        self.check_header(lines[0][3:], grid)
        return grid


def fence_depth(encoder: GridEncoder) -> int:
    """How many fenced blocks the encoder's text nests, one inside another, from the outside in."""
    depth = 0
    while isinstance(encoder, WrappingEncoder) and (isinstance(encoder, FencedEncoder) or encoder.keeps_lines):
        depth += isinstance(encoder, FencedEncoder)
        encoder = encoder.inner
    return depth


class GridCodeBlockEncoder(FencedEncoder):
    """The inner text in a fenced block: ```` ```grid\\n012\\n345\\n``` ````."""

    def header(self, grid: Grid) -> str:
        return "grid"


class GridShapeEncoder(FencedEncoder):
    """A fenced block whose header gives the shape: ```` ```grid shape: 2x3\\n...\\n``` ````."""

    SHAPE = re.compile(r"grid shape: ([0-9]{1,2})x([0-9]{1,2})")

    def header(self, grid: Grid) -> str:
        return f"grid shape: {len(grid)}x{len(grid[0])}"

    def check_header(self, header: str, grid: Grid) -> None:
        match = self.SHAPE.fullmatch(header)
        if match is None:
            raise DecodeError(f"block header {header!r} is not 'grid shape: <rows>x<columns>'", "header")
        if header != self.header(grid):
            raise DecodeError(f"header says {match[1]}x{match[2]} but the grid is {len(grid)}x{len(grid[0])}", "header")


class ReplaceNumberEncoder(WrappingEncoder):
    """The inner text with digits 0-9 written as the symbols `ñ ò ÷ û ą ć ď ę Ě Ğ`."""

    keeps_lines = True
    TO_SYMBOLS = str.maketrans(DIGITS, SYMBOLS)
    TO_DIGITS = str.maketrans(SYMBOLS, DIGITS)

    def __init__(self, inner: GridEncoder):
        super().__init__(inner)
        encoder = inner
        while isinstance(encoder, WrappingEncoder):
            if isinstance(encoder, ReplaceNumberEncoder):  # its symbols would collide with ours
                raise ValueError("ReplaceNumberEncoder cannot wrap another ReplaceNumberEncoder: nothing to replace")
            encoder = encoder.inner

    def encode(self, grid: Grid) -> str:
        return self.inner.encode(grid).translate(self.TO_SYMBOLS)

    def decode_exact(self, text: str) -> Grid:
        digit = next((ch for ch in text if ch in DIGITS), None)
        if digit is not None:
            raise DecodeError(f"digit {digit!r} where a symbol of {SYMBOLS!r} was expected", "not_a_digit")
        return self.inner.decode_exact(text.translate(self.TO_DIGITS))


ENCODERS: dict[str, type[GridEncoder]] = {
    cls.__name__: cls
    for cls in (MinimalGridEncoder, RowNumberEncoder, GridShapeEncoder, GridCodeBlockEncoder, ReplaceNumberEncoder)
}


# ----------------------------------------------------------------------------- spec parser

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|\S)")


def create(spec: str) -> GridEncoder:
    """An encoder from a spec such as `GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))`.

    Only known encoder names, each with its parentheses, nested one inside another; anything else
    raises ValueError naming the unknown or misplaced part.
    """
    tokens = _TOKEN.findall(spec)
    encoder, rest = _parse(tokens, spec)
    if rest:
        raise ValueError(f"encoder spec {spec!r}: unexpected {rest[0]!r} after {encoder.spec}")
    return encoder


def _parse(tokens: list[str], spec: str) -> tuple[GridEncoder, list[str]]:
    if not tokens:
        raise ValueError(f"encoder spec {spec!r}: expected an encoder name, found the end")
    name, *rest = tokens
    if name not in ENCODERS:
        if not name.isidentifier():
            raise ValueError(f"encoder spec {spec!r}: unexpected {name!r} where an encoder name was expected")
        known = ", ".join(ENCODERS)
        raise ValueError(f"encoder spec {spec!r}: unknown encoder {name!r}; known encoders: {known}")
    if not rest or rest[0] != "(":
        raise ValueError(f"encoder spec {spec!r}: {name} needs parentheses, e.g. {name}(...)")
    rest = rest[1:]
    cls = ENCODERS[name]
    if issubclass(cls, WrappingEncoder):
        if rest[:1] == [")"]:
            raise ValueError(f"encoder spec {spec!r}: {name} wraps another encoder, e.g. {name}(MinimalGridEncoder())")
        inner, rest = _parse(rest, spec)
        encoder = cls(inner)
    else:
        encoder = cls()
    if rest[:1] != [")"]:
        found = repr(rest[0]) if rest else "the end"
        raise ValueError(f"encoder spec {spec!r}: expected ')' to close {name}, found {found}")
    return encoder, rest[1:]
