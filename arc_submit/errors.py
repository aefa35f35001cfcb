"""Errors in what a user gave (a path, a file, a flag): the commands print them as one line each; and
EngineBroken, an engine that must not be used again.

Library code raises `UserError` (or a subclass) with a message that names the file, task and problem;
`arc_submit.cli` prints it without a traceback and exits non-zero, a few lines at most however many
problems there are (`summarize`: one line per kind of problem, with its first place and a count).
"""


import re


def _kind(problem: str) -> str:
    """A problem without its place: task ids, quoted values and numbers left out."""
    text = re.sub(r"task \S+?:", "task _:", problem)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "_", text)
    return re.sub(r"\d+", "#", text)


def summarize(problems: list[str], most: int = 3) -> list[str]:
    """At most `most` lines for any number of problems: one per kind of problem (its first place, and
    how many more are like it), the kinds past `most - 1` folded into one last line."""
    if len(problems) <= most:
        return list(problems)
    kinds: dict[str, list] = {}
    for problem in problems:
        kinds.setdefault(_kind(problem), [problem, 0])[1] += 1
    lines = [first + (f" (and {count - 1} more like it)" if count > 1 else "") for first, count in kinds.values()]
    if len(lines) <= most:
        return lines
    rest = list(kinds.values())[most - 1:]
    return lines[: most - 1] + [f"... and {sum(count for _, count in rest)} more problems of {len(rest)} other "
                                f"kinds, e.g. {rest[0][0]}"]


class UserError(Exception):
    """A problem with the user's input. `problems` holds one line per problem."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class EngineBroken(RuntimeError):
    """The engine raised (out of memory, a failed wake), or answered for other prompts than it was given.
    Requests it had scheduled may still be inside it (vLLM returns them first from the next `generate`)
    and its memory pool may be half mapped, so it is never used again: a worker exits and the queue
    starts a fresh one in its place; a run in one process stops."""
