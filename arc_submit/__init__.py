"""arc-submit: an offline toolkit that turns a language model into an ARC Prize submission.

    python -m arc_submit --help
"""

__version__ = "0.1.0"
