"""README.md, docs/*.md and benchmarks/*.md say only what runs: every command in their code blocks runs as
written as far as can be checked offline in seconds (`python -m arc_submit ...` parses with the CLI's own
parser, `make TARGET VAR=value` names a target and variables the Makefile has, `python SCRIPT.py --flag`
names a script that takes that flag, `bash FILE` a file that exists), every relative link points at a file
(and heading) that exists, the commands table lists every command, and README.md fits a first read.

    .venv/bin/python -m pytest -q tests/test_docs.py
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
README_MAX_LINES = 300
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", ""}

# ----------------------------------------------------------------------------------------------------------
# Reading a page: code blocks, the prose between them, commands, links, headings


def split_page(text: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The fenced code blocks (language, lines) and the prose lines outside them."""
    blocks, prose, fence = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = (stripped[3:].strip(), [])
        elif fence is not None and stripped.startswith("```"):
            blocks.append(fence)
            fence = None
        elif fence is not None:
            fence[1].append(line)
        else:
            prose.append(line)
    assert fence is None, f"a code block opened with ```{fence[0]} is never closed"
    return blocks, prose


def block_commands(text: str) -> list[str]:
    """Each command of the page's shell code blocks, continuation lines (ending in a backslash) joined."""
    commands = []
    for language, lines in split_page(text)[0]:
        if language not in SHELL_LANGUAGES:
            continue
        joined = "\n".join(lines).replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return commands


def inline_spans(text: str) -> list[str]:
    """The `code spans` of the prose (single backticks; spans of more backticks hold fences, not commands)."""
    prose = "\n".join(split_page(text)[1])
    return [span.strip() for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", prose)]


def links(text: str) -> list[str]:
    """The targets of the prose's Markdown links, code spans left out."""
    prose = re.sub(r"`[^`\n]*`", "", "\n".join(split_page(text)[1]))
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", prose)


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for line in split_page(text)[1]:
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            words = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(words.replace(" ", "-"))
    return anchors


# ----------------------------------------------------------------------------------------------------------
# Checking one command; each returns the problem in words, or None


def arc_submit_problem(argv: list[str]) -> str | None:
    """`python -m arc_submit ARGV` parses with the CLI's parser (nothing runs; paths need not exist)."""
    from arc_submit.cli import COMMANDS, DEFAULT_COMMAND, make_parser

    if not argv or argv[0] in ("-h", "--help"):
        return None
    if argv[0] not in COMMANDS:
        if not argv[0].startswith("-"):
            return f"{argv[0]!r} is not a command ({', '.join(COMMANDS)})"
        argv = [DEFAULT_COMMAND, *argv]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            make_parser(argv[0]).parse_args(argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return errors.getvalue().strip().splitlines()[-1]
    return None


@functools.cache
def makefile() -> tuple[set[str], set[str], set[str]]:
    """The Makefile's targets, the variables it sets or reads, and the stacks STACK= takes."""
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M))
    variables = set(re.findall(r"^([A-Za-z_]\w*)\s*(?:\?=|:=|\+=|=)", text, re.M))
    variables |= set(re.findall(r"\$\(([A-Za-z_]\w*)\)", text))
    stacks = set(re.findall(r"^VENV_(\w+)\s*:?=", text, re.M))
    return targets, variables, stacks


@functools.cache
def accelerators() -> set[str]:
    """What `make kaggle-push ACCELERATOR=...` takes: kaggle/push.py's accelerators and presets' names."""
    spec = importlib.util.spec_from_file_location("kaggle_push_for_docs", ROOT / "kaggle/push.py")
    push = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(push)
    return set(push.ACCELERATORS) | set(push.PRESET_ACCELERATORS)


def make_problem(argv: list[str]) -> str | None:
    """`make ARGV`: each target exists, each VAR=value names a variable the Makefile uses, with a value it takes."""
    targets, variables, stacks = makefile()
    if not argv:
        return "make with no target"
    for word in argv:
        name, is_variable, value = word.partition("=")
        if not is_variable and word not in targets:
            return f"no target {word!r} in the Makefile"
        if is_variable and name not in variables:
            return f"the Makefile has no variable {name}"
        if name == "STACK" and is_variable and value not in stacks:
            return f"STACK={value}: the stacks are {sorted(stacks)}"
        if name == "ACCELERATOR" and is_variable and value not in accelerators():
            return f"ACCELERATOR={value}: kaggle/push.py takes {sorted(accelerators())}"
    return None


@functools.cache
def script_help(script: str, subcommand: str) -> str:
    argv = [sys.executable, script, *([subcommand] if subcommand else []), "--help"]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    return result.stdout if result.returncode == 0 else ""


def script_problem(argv: list[str]) -> str | None:
    """`python SCRIPT.py ARGV`: the script exists, and its --help (or its subcommand's) names every flag given."""
    script, rest = argv[0], argv[1:]
    if not (ROOT / script).is_file():
        return f"no file {script}"
    subcommand = rest[0] if rest and not rest[0].startswith("-") else ""
    helps = script_help(script, "") + script_help(script, subcommand)
    for flag in (word.split("=")[0] for word in rest if word.startswith("--")):
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps):
            return f"{script} takes no {flag}"
    return None


def command_problem(command: str) -> str | None:
    """The problem with one command line of a code block, or None when it runs as written (as far as checked)."""
    argv = shlex.split(command, comments=True)
    if " -- " in command and "arc_submit" in argv:  # e.g. `ray job submit ... -- python -m arc_submit ...`
        argv = argv[argv.index("--") + 1:]
    if argv[:3] == ["python", "-m", "arc_submit"]:
        return arc_submit_problem(argv[3:])
    if argv[:1] == ["make"]:
        return make_problem(argv[1:])
    if argv[:1] == ["python"] and len(argv) > 1 and argv[1].endswith(".py"):
        return script_problem(argv[1:])
    if argv[:1] == ["bash"]:
        return None if len(argv) > 1 and (ROOT / argv[1]).is_file() else f"no file {argv[1:2]}"
    return None


def span_problem(span: str) -> str | None:
    """An inline `make ...` is checked whole; an inline `python -m arc_submit x ...` names a command x (a word in
    capitals, `COMMAND`, is a placeholder)."""
    from arc_submit.cli import COMMANDS

    try:
        argv = shlex.split(span)
    except ValueError:
        return None
    if argv[:1] == ["make"] and len(argv) > 1:
        return make_problem(argv[1:])
    if argv[:3] == ["python", "-m", "arc_submit"] and len(argv) > 3 and argv[3][:1].islower():
        return None if argv[3] in COMMANDS else f"{argv[3]!r} is not a command"
    return None


def link_problem(page: Path, target: str) -> str | None:
    if re.match(r"[a-z]+:", target):  # https:, mailto:
        return None
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
        return f"{target}: no such file"
    if anchor and file.suffix == ".md" and anchor not in heading_anchors(file.read_text()):
        return f"{target}: no heading #{anchor} in {file.name}"
    return None


# ----------------------------------------------------------------------------------------------------------
# The pages


def test_the_pages_are_there_and_hold_commands_of_every_kind():
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/kaggle.md", "docs/selection.md", "benchmarks/RESULTS.md"} <= names
    commands = [shlex.split(c, comments=True)[:2] for page in PAGES for c in block_commands(page.read_text())]
    kinds = {tuple(argv[:2]) if argv[0] == "python" and argv[1] == "-m" else (argv[0],) for argv in commands}
    assert {("python", "-m"), ("make",), ("python",), ("bash",)} <= kinds


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_command_in_a_code_block_runs_as_written(page):
    problems = [f"{command}\n    -> {problem}" for command in block_commands(page.read_text())
                if (problem := command_problem(command))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_inline_command_names_what_exists(page):
    problems = [f"`{span}` -> {problem}" for span in inline_spans(page.read_text()) if (problem := span_problem(span))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file_that_exists(page):
    problems = [problem for target in links(page.read_text()) if (problem := link_problem(page, target))]
    assert not problems, "\n".join(problems)


def test_readme_links_every_docs_page():
    targets = {(ROOT / target.partition("#")[0]).resolve() for target in links((ROOT / "README.md").read_text())}
    unlinked = [page.name for page in (ROOT / "docs").glob("*.md") if page.resolve() not in targets]
    assert not unlinked, f"README.md links no docs page {unlinked}"


def test_readme_fits_a_first_read():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"


def test_the_commands_table_lists_every_command():
    from arc_submit.cli import COMMANDS

    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {re.match(r"\| `\[?(\w+)", row).group(1) for row in rows}
    assert listed == set(COMMANDS) - {"worker"}, f"README's table lists {sorted(listed)}"


# ----------------------------------------------------------------------------------------------------------
# The checks themselves catch what they are for


def test_the_checks_catch_a_wrong_command_target_variable_script_and_link(tmp_path):
    assert command_problem("python -m arc_submit validate --challenges x.json") is None
    assert command_problem("python -m arc_submit --seed 0 --config smoke --dataset rules") is None
    assert "no-such-flag" in command_problem("python -m arc_submit validate --challenges x.json --no-such-flag")
    assert "seed" in command_problem("python -m arc_submit --seed zero")
    assert "not a command" in command_problem("python -m arc_submit valdate --challenges x.json")
    assert "not a command" in span_problem("python -m arc_submit valdate")
    assert command_problem("make test STACK=kaggle") is None
    assert "no target" in command_problem("make tests")
    assert "STACK=" in command_problem("make test STACK=windows")
    assert "no variable" in command_problem("make test STAKC=kaggle")
    assert "ACCELERATOR=" in command_problem("make kaggle-push ACCELERATOR=TPU")
    assert command_problem("python benchmarks/selection.py --tasks 4 --scorers") is None
    assert "--no-such-flag" in command_problem("python benchmarks/selection.py --no-such-flag")
    assert "no file" in command_problem("python benchmarks/missing.py")
    assert "no file" in command_problem("bash .ci/missing")
    page = tmp_path / "page.md"
    page.write_text("# A heading\n")
    assert link_problem(page, "page.md#a-heading") is None
    assert "no such file" in link_problem(page, "missing.md")
    assert "no heading" in link_problem(page, "page.md#another-heading")


def test_reading_a_page_finds_blocks_spans_and_links_and_skips_code():
    text = ("Run `make test` and [see](docs/x.md).\n\n```bash\nmake a \\\n    B=1   # c\n# only a comment\n```\n"
            "```toml\nx = 1\n```\n`[not](a-link.md)`\n")
    assert block_commands(text) == ["make a      B=1   # c"]
    assert inline_spans(text) == ["make test", "[not](a-link.md)"]
    assert links(text) == ["docs/x.md"]
    assert heading_anchors("## The Kaggle twin's IPEX limit\n## Encoders (`make study-encoders`)\n") == {
        "the-kaggle-twins-ipex-limit", "encoders-make-study-encoders"}
