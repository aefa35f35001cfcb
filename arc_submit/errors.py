"""Errors in what a user gave (a path, a file, a flag): the commands print them as one line each; and
EngineBroken, an engine that must not be used again.

Library code raises `UserError` (or a subclass) with a message that names the file, task and problem;
`arc_submit.cli` prints it without a traceback and exits non-zero.
"""


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
