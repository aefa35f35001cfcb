"""Prompts: chat messages for a task (train pairs + test input, encoded), rendered with the model's own
chat template into token ids; train pairs are dropped from the end until the prompt fits `max_seq_len`.

    builder = PromptBuilder(tokenizer, create(DEFAULT_ENCODER), max_seq_len=8192)
    example = builder.fit(task.train, task.test[0].input, answer=None, reserve=max_new_tokens)
"""

from __future__ import annotations

from dataclasses import dataclass

from arc_submit.data.encoders import GridEncoder
from arc_submit.data.tasks import Grid, Pair

INSTRUCTION = (
    "Each example below shows an input grid and the output grid that one hidden rule makes from it. "
    "Find the rule and apply it to the test input."
)

# Used only when a tokenizer has no chat template of its own.
PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}:\n{{ message['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)


@dataclass(frozen=True)
class Example:
    """Token ids of one prompt, and of its answer when known (training); `n_train` pairs were shown."""

    prompt_ids: list[int]
    answer_ids: list[int]
    n_train: int

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


class PromptBuilder:
    """Renders tasks as chat prompts with one tokenizer, encoder and system prompt."""

    def __init__(self, tokenizer, encoder: GridEncoder, max_seq_len: int, system_prompt: str = ""):
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.max_seq_len = max_seq_len
        self.system_prompt = system_prompt
        self.template = None if getattr(tokenizer, "chat_template", None) else PLAIN_TEMPLATE

    def user_text(self, train: list[Pair], query: Grid) -> str:
        parts = [INSTRUCTION]
        for number, pair in enumerate(train, start=1):
            parts += [f"## Example {number}", "### Input", self.encoder.encode(pair.input),
                      "### Output", self.encoder.encode(pair.output)]
        parts += ["## Test", "### Input", self.encoder.encode(query)]
        return "\n\n".join(parts)

    def messages(self, train: list[Pair], query: Grid) -> list[dict]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": self.user_text(train, query)}]

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt, chat_template=self.template
        )

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def render(self, train: list[Pair], query: Grid, answer: Grid | None = None) -> Example:
        """Token ids of the prompt (ending where the assistant starts) and of the answer turn."""
        messages = self.messages(train, query)
        prompt = self._render(messages, generation_prompt=True)
        if answer is None:
            return Example(self._ids(prompt), [], len(train))
        full = self._render([*messages, {"role": "assistant", "content": self.encoder.encode(answer)}], False)
        if not full.startswith(prompt):
            raise ValueError("the chat template renders the prompt differently with an answer; cannot mask it")
        return Example(self._ids(prompt), self._ids(full[len(prompt):]), len(train))

    def fit(self, train: list[Pair], query: Grid, answer: Grid | None = None, reserve: int = 0) -> Example | None:
        """The prompt with as many train pairs as fit `max_seq_len` (keeping `reserve` tokens for the
        answer when it is unknown); None when not even one pair fits."""
        for count in range(len(train), 0, -1):
            example = self.render(train[:count], query, answer)
            if example.length + reserve <= self.max_seq_len:
                return example
        return None

    def answer_tokens(self, grid: Grid) -> int:
        """Tokens of a grid's answer turn: the encoded grid plus the template's end of turn."""
        return len(self.render([], [[0]], grid).answer_ids)
