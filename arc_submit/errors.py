"""Errors in what a user gave (a path, a file, a flag): the commands print them as one line each.

Library code raises `UserError` (or a subclass) with a message that names the file, task and problem;
`arc_submit.cli` prints it without a traceback and exits non-zero.
"""


class UserError(Exception):
    """A problem with the user's input. `problems` holds one line per problem."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
