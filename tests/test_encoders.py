"""Encoders: decode(encode(g)) == g for every encoder on random grids and every embedded grid;
decode refuses anything else; the spec parser knows only encoder names and nesting; the tokens command
(studies/tokens.py) counts what each encoder costs."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_submit.data.encoders import DEFAULT_ENCODER, ENCODERS, SYMBOLS, DecodeError, create
from arc_submit.data.tasks import load_dataset
from tests.helpers.cli import run_cli
from tests.helpers.tasks import grids

BASES = ["MinimalGridEncoder()", "ReplaceNumberEncoder(MinimalGridEncoder())"]
WRAPPERS = ["RowNumberEncoder", "GridShapeEncoder", "GridCodeBlockEncoder", "ReplaceNumberEncoder"]


def all_specs(depth: int = 2) -> list[str]:
    """Every nesting of up to `depth` wrappers around a base encoder."""
    specs = list(BASES)
    for n in range(1, depth + 1):
        for chain in itertools.product(WRAPPERS, repeat=n):
            for base in BASES:
                spec = base
                for wrapper in reversed(chain):
                    spec = f"{wrapper}({spec})"
                if spec.count("ReplaceNumberEncoder") <= 1:  # doubled replacement is refused
                    specs.append(spec)
    return specs


SPECS = all_specs()


def test_issue_examples_are_exact():
    grid = [[0, 1, 2], [3, 4, 5]]
    assert create("MinimalGridEncoder()").encode(grid) == "012\n345"
    assert create("RowNumberEncoder(MinimalGridEncoder())").encode(grid) == "1 012\n2 345"
    assert create(DEFAULT_ENCODER).encode(grid) == "```grid shape: 2x3\n1 012\n2 345\n```"
    assert create("GridCodeBlockEncoder(MinimalGridEncoder())").encode(grid) == "```grid\n012\n345\n```"
    assert create("ReplaceNumberEncoder(MinimalGridEncoder())").encode(grid) == "ñò÷\nûąć"
    assert create("ReplaceNumberEncoder(MinimalGridEncoder())").encode([[6, 7, 8, 9]]) == "ďęĚĞ"


@settings(max_examples=60, deadline=None)
@given(grid=grids(), spec=st.sampled_from(SPECS))
def test_round_trip_on_random_grids(grid, spec):
    encoder = create(spec)
    text = encoder.encode(grid)
    assert encoder.decode(text) == grid
    assert create(encoder.spec) == encoder


@pytest.mark.parametrize("dataset", ["arc-agi-1-eval", "arc-agi-2-eval"])
@pytest.mark.parametrize("spec", [DEFAULT_ENCODER, "ReplaceNumberEncoder(GridCodeBlockEncoder(RowNumberEncoder(MinimalGridEncoder())))"])
def test_round_trip_on_every_embedded_grid(dataset, spec):
    encoder = create(spec)
    for task in load_dataset(dataset):
        for pair in [*task.train, *task.test]:
            for grid in (pair.input, pair.output):
                assert encoder.decode(encoder.encode(grid)) == grid, task.task_id


@pytest.mark.parametrize(
    "spec, text",
    [
        ("MinimalGridEncoder()", ""),
        ("MinimalGridEncoder()", "012\n34"),  # ragged
        ("MinimalGridEncoder()", "01a"),
        ("MinimalGridEncoder()", "0 1"),
        ("MinimalGridEncoder()", "01\n\n23"),
        ("MinimalGridEncoder()", "0" * 31),
        ("MinimalGridEncoder()", "\n".join(["0"] * 31)),
        ("MinimalGridEncoder()", "٣"),  # a non-ASCII digit
        ("RowNumberEncoder(MinimalGridEncoder())", "1 01\n3 01"),
        ("RowNumberEncoder(MinimalGridEncoder())", "01\n01"),
        ("RowNumberEncoder(MinimalGridEncoder())", "1  01"),
        (DEFAULT_ENCODER, "```grid shape: 2x2\n1 01\n```"),  # header disagrees
        (DEFAULT_ENCODER, "```grid shape: 1x2\n1 01"),  # unclosed
        (DEFAULT_ENCODER, "```grid shape: 01x2\n1 01\n```"),
        (DEFAULT_ENCODER, "```grid\n1 01\n```"),
        (DEFAULT_ENCODER, "The answer is 968."),
        ("GridCodeBlockEncoder(MinimalGridEncoder())", "```python\n01\n```"),
        ("ReplaceNumberEncoder(MinimalGridEncoder())", "ñò1"),
        ("ReplaceNumberEncoder(MinimalGridEncoder())", "ñòx"),
    ],
)
def test_decode_refuses_what_is_not_a_grid_in_the_format(spec, text):
    with pytest.raises(DecodeError):
        create(spec).decode(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="0123456789 \n`gridshape:x" + SYMBOLS, max_size=80), spec=st.sampled_from(SPECS))
def test_decode_returns_only_valid_grids(text, spec):
    try:
        grid = create(spec).decode(text)
    except DecodeError:
        return
    assert 1 <= len(grid) <= 30 and all(len(row) == len(grid[0]) for row in grid)
    assert 1 <= len(grid[0]) <= 30 and all(type(c) is int and 0 <= c <= 9 for row in grid for c in row)


def test_decode_ignores_surrounding_whitespace():
    encoder = create(DEFAULT_ENCODER)
    assert encoder.decode("\n" + encoder.encode([[1, 2]]) + "\n") == [[1, 2]]


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("Foo()", "unknown encoder 'Foo'"),
        ("__import__('os').system('true')", "unknown encoder '__import__'"),
        ("GridShapeEncoder(Bar())", "unknown encoder 'Bar'"),
        ("MinimalGridEncoder", "needs parentheses"),
        ("RowNumberEncoder()", "wraps another encoder"),
        ("MinimalGridEncoder(MinimalGridEncoder())", "expected ')'"),
        ("RowNumberEncoder(MinimalGridEncoder()", "found the end"),
        ("MinimalGridEncoder() + 1", "unexpected '+'"),
        ("", "found the end"),
        ("(MinimalGridEncoder())", "unexpected '('"),
        ("ReplaceNumberEncoder(RowNumberEncoder(ReplaceNumberEncoder(MinimalGridEncoder())))", "cannot wrap"),
    ],
)
def test_spec_parser_refuses_naming_the_part(spec, fragment):
    with pytest.raises(ValueError, match=None) as error:
        create(spec)
    assert fragment in str(error.value)


def test_spec_parser_allows_whitespace_and_knows_every_encoder():
    assert create(" GridShapeEncoder ( MinimalGridEncoder ( ) ) ").spec == "GridShapeEncoder(MinimalGridEncoder())"
    assert set(ENCODERS) == {
        "MinimalGridEncoder", "RowNumberEncoder", "GridShapeEncoder", "GridCodeBlockEncoder", "ReplaceNumberEncoder",
    }


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
