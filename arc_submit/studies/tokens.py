"""The cost side of choosing an encoder: tokens per task with a model's tokenizer, and how many tasks
fit a given max_seq_len.

    python -m arc_submit tokens --model smollm2-135m --dataset arc-agi-1-eval
"""

from __future__ import annotations

from arc_submit.data.encoders import DEFAULT_ENCODER

ENCODERS = (
    "MinimalGridEncoder()",
    "RowNumberEncoder(MinimalGridEncoder())",
    "GridShapeEncoder(MinimalGridEncoder())",
    DEFAULT_ENCODER,
    "GridCodeBlockEncoder(MinimalGridEncoder())",
    "ReplaceNumberEncoder(MinimalGridEncoder())",
)


def task_tokens(task, builder) -> int:
    """Tokens of the task's longest prompt + answer: all train pairs, a test input and its output
    (the test input as a stand-in when the output is unknown)."""
    return max(builder.render(task.train, pair.input, pair.output or pair.input).length for pair in task.test)
