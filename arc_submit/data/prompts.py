"""Prompts: a task's train pairs and test input in a prompt format (named, or a user's TOML file), as chat
messages rendered with the model's own chat template (or the format's, where the format fixes its text)
into token ids. A format puts the task in one user message, or lays each pair as turns (a user turn per
input, an assistant turn per output, the test input last: NVARC's and the ARChitects' formats). The
prompt ends where the model starts writing (after the format's answer prefix, e.g. ```` ```grid ```` in
arc24's formats); the answer turn is the rest of the encoded grid and the template's end of turn, with an
end-of-sequence token where the template has none. Train pairs are dropped (from the end, or from the
front where the format says) until a prompt fits `max_seq_len`.

    builder = PromptBuilder(tokenizer, create(DEFAULT_ENCODER), max_seq_len=8192, prompt_format=load_format("arc24-v0"))
    example = builder.fit(task.train, task.test[0].input, answer=None, reserve=1000)
    grid = builder.parse(completion_text)          # the format's answer prefix + what the model wrote
    python -m arc_submit prompt --dataset arc-agi-1-train --task 007bbfb7 --set prompt.format='"arc24-v0"'
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from arc_submit.data.encoders import GridEncoder, create
from arc_submit.data.tasks import MAX_SIDE, Grid, Pair
from arc_submit.errors import UserError

# Used only when a tokenizer has no chat template of its own.
PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}:\n{{ message['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:\n{% endif %}"
)
# Stands for the answer while a conversation is rendered, to find where the answer starts and what the
# template writes after it; no template or format writes it.
ANSWER_MARK = "\u2045arc-submit-answer\u2046"


# ----------------------------------------------------------------------------- prompt formats


@dataclass(frozen=True)
class PromptFormat:
    """What the model reads and writes, around the encoded grids.

    `user` and `assistant` are Jinja templates (rendered like arc24's, with jinja2's defaults). With
    `turns = "one"` the task is one user message: `user` sees `train_samples` (a list of {input, output}
    texts) and `test_input`. With `turns = "pairs"` each grid is a turn: `user` sees `input` (the encoded
    grid), `index` (1-based) and `test` (true for the test input, the last turn). `assistant` sees
    `output`. `answer_prefix` is the fixed start of every answer: at inference it ends the prompt, and the
    model writes the rest. `system` is the system message (None: none, the chat template's default).
    `chat_template` (None: the tokenizer's) is the format's own conversation text, for formats whose
    bytes are fixed whatever the tokenizer's template says; it sees the tokenizer's `bos_token` and
    `eos_token`. `bos`: the prompt's token ids start with the tokenizer's BOS token (as the team's
    `tokenizer(prompt)` added it; the text does not show it). `encoder`: the grid encoder the format was
    trained with (None: any that fits `answer_prefix`). `drop`: which train pairs go first when a prompt
    is too long ("last", or "first" as the teams' cut_to_len drops leading pairs).
    """

    name: str
    user: str
    assistant: str = "{{ output }}"
    answer_prefix: str = ""
    system: str | None = None
    turns: str = "one"
    chat_template: str | None = None
    bos: bool = False
    encoder: str | None = None
    drop: str = "last"

    @cached_property
    def _templates(self):
        import jinja2

        return jinja2.Template(self.user), jinja2.Template(self.assistant)

    @property
    def multi_turn(self) -> bool:
        return self.turns == "pairs"

    def user_text(self, train_texts: list[dict[str, str]], test_text: str) -> str:
        return self._templates[0].render(train_samples=train_texts, test_input=test_text)

    def turn_text(self, grid_text: str, index: int, test: bool) -> str:
        """A multi-turn format's user turn for one input grid."""
        return self._templates[0].render(input=grid_text, index=index, test=test)

    def assistant_text(self, output: str) -> str:
        return self._templates[1].render(output=output)

    def check_encoder(self, encoder: GridEncoder) -> None:
        """ValueError when the encoder's text does not start with the answer prefix, or is not the one the
        format was trained with."""
        if self.encoder is not None and encoder.spec != create(self.encoder).spec:
            raise ValueError(f"prompt format {self.name} writes grids as its model was trained, with encoder "
                             f"{self.encoder}, not {encoder.spec}: leave prompt.encoder at its default or set it to that")
        for grid in ([[0]], [[1, 2, 3], [4, 5, 6]]):
            text = encoder.encode(grid)
            if not text.startswith(self.answer_prefix):
                raise ValueError(
                    f"prompt format {self.name} starts every answer with {self.answer_prefix!r}, but encoder "
                    f"{encoder.spec} writes {text[:20]!r}: choose an encoder whose text starts with it")


INSTRUCTION = ("Each example below shows an input grid and the output grid that one hidden rule makes from it. "
               "Find the rule and apply it to the test input.")
DEFAULT_USER = (
    INSTRUCTION + "{% for sample in train_samples %}\n\n## Example {{ loop.index }}"
    "\n\n### Input\n\n{{ sample.input }}\n\n### Output\n\n{{ sample.output }}{% endfor %}"
    "\n\n## Test\n\n### Input\n\n{{ test_input }}"
)
# The same text as a conversation, one user turn per input grid and one assistant turn per output grid (the
# model's own chat template), so that `ttft.loss = "outputs"` can train on every demonstration's output.
TURNS_USER = ("{% if index == 1 %}" + INSTRUCTION + "\n\n{% endif %}"
              "{% if test %}Test input{% else %}Example {{ index }} input{% endif %}:\n\n{{ input }}")

# ironbar/arc24, scripts/arc24/prompting.py (output-from-examples-v0 and -v1), copied as data.
ARC24_SYSTEM_V0 = """You are a helpful AI assistant. Your job is to solve tasks from the Abstraction and Reasoning Challenge (ARC). 
The user will present you with sample input and output grids for each task. 
Your job will be to understand the transformation between the input and the output and apply it to the last input grid given by the user. 
The puzzle-like inputs and outputs present a grid where each square can be one of ten colors. A grid can be any height or width between 1x1 and 30x30.
The background of the grid is typically colored with 0.
The tasks from ARC are based on the following priors:

- Objectness: Objects persist and cannot appear or disappear without reason. Objects can interact or not depending on the circumstances.
- Goal-directed: Objects can be animate or inanimate. Some objects are "agents" - they have intentions and they pursue goals.
- Numbers & counting: Objects can be counted or sorted by their shape, appearance, or movement using basic mathematics like addition, subtraction, and comparison.
- Basic geometry & topology: Objects can be shapes like rectangles, triangles, and circles which can be mirrored, rotated, translated, deformed, combined, repeated, etc. Differences in distances can be detected.

The transformations between input and output should be based on these priors.
"""
ARC24_USER_V0 = """Let's see if you can solve this simple ARC task. These are some input-output grid examples that define the task.
{% for sample in train_samples %}
## Example {{ loop.index }}

### Input

{{ sample.input }}

### Output

{{ sample.output }}
{% endfor %}
## Test case

### Input

{{ test_input }}
"""
ARC24_USER_V1 = """Let's see if you can solve this simple Abstraction and Reasoning Challenge (ARC) task.
Below there are some input-output grid examples that define the task.
Your job is to understand the transformation between the input and the output and apply it to the test input grid.
The transformations are always based on the following priors: objectness, goal-directed, numbers & counting, and basic geometry & topology.
{% for sample in train_samples %}
## Example {{ loop.index }}

### Input

{{ sample.input }}

### Output

{{ sample.output }}
{% endfor %}
## Test case

### Input

{{ test_input }}
"""
ARC24_ASSISTANT = """### Output

{{ output }}"""

# NVARC (1ytic/NVARC, ARC Prize 2025 1st): their Qwen3-4B's chat template
# (ARChitects/qwen3_configs/chat_template.j2), copied as data: ChatML with no system turn and no newline
# after <|im_end|>. One user turn per input grid, one assistant turn per output grid (rows of digits).
NVARC_TEMPLATE = (
    "{%- for message in messages %}\n"
    "    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}"
)
# The ARChitects (da-fr/arc-prize-2024, ARC Prize 2024 1st): the fmt_opts of run_finetuning_Nemo-full.py,
# as data: preprompt "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjklmnpqrstuvwxyz", query_beg "I", reply_beg
# "\n+/-=O", reply_end "\n" + eos_token, lines_sep "\n"; their tokenizer prepends <s>.
ARCHITECTS_PREPROMPT = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjklmnpqrstuvwxyz"
ARCHITECTS_TEMPLATE = (
    "{{ '" + ARCHITECTS_PREPROMPT + "' }}{% for message in messages %}"
    "{% if message.role == 'user' %}{{ 'I' + message.content }}"
    "{% else %}{{ '\\n+/-=O' + message.content + '\\n' + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\n+/-=O' }}{% endif %}"
)

FORMATS: dict[str, PromptFormat] = {
    "arc-submit": PromptFormat("arc-submit", DEFAULT_USER),
    "arc-submit-turns": PromptFormat("arc-submit-turns", TURNS_USER, turns="pairs"),
    "arc24-v0": PromptFormat("arc24-v0", ARC24_USER_V0, ARC24_ASSISTANT, "```grid", ARC24_SYSTEM_V0),
    "arc24-v1": PromptFormat("arc24-v1", ARC24_USER_V1, ARC24_ASSISTANT, "```grid", "You are a helpful assistant."),
    "nvarc": PromptFormat("nvarc", "{{ input }}", turns="pairs", chat_template=NVARC_TEMPLATE,
                          encoder="MinimalGridEncoder()", drop="first"),
    "architects": PromptFormat("architects", "{{ input }}", turns="pairs", chat_template=ARCHITECTS_TEMPLATE,
                               bos=True, encoder="MinimalGridEncoder()", drop="first"),
}
DEFAULT_FORMAT = "arc-submit"
FORMAT_KEYS = ("user", "assistant", "answer_prefix", "system", "turns", "chat_template", "bos", "encoder", "drop")
TURNS = ("one", "pairs")
DROPS = ("last", "first")


def load_format(name_or_path: str) -> PromptFormat:
    """A named format, or one from a TOML file with `user` (and optionally `assistant`, `answer_prefix`,
    `system`, `turns`, `chat_template`, `bos`, `encoder`, `drop`); ValueError naming the file and the problem."""
    if name_or_path in FORMATS:
        return FORMATS[name_or_path]
    path = Path(name_or_path)
    if path.suffix != ".toml":
        raise ValueError(f"prompt format {name_or_path!r}: not one of {', '.join(FORMATS)} nor a .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"prompt format {path}: cannot be read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"prompt format {path}: not valid TOML: {error}") from None
    unknown = [key for key in data if key not in FORMAT_KEYS]
    if unknown or "user" not in data:
        raise ValueError(f"prompt format {path}: " + (f"unknown key {unknown[0]!r}" if unknown else "no 'user' template")
                         + f"; keys: {', '.join(FORMAT_KEYS)}")
    wrong = next((key for key, value in data.items() if not isinstance(value, bool if key == "bos" else str)), None)
    if wrong is not None:
        raise ValueError(f"prompt format {path}: {wrong} must be " + ("true or false" if wrong == "bos" else "text"))
    for key, allowed in (("turns", TURNS), ("drop", DROPS)):
        if data.get(key, allowed[0]) not in allowed:
            raise ValueError(f"prompt format {path}: {key} = {data[key]!r}: one of {', '.join(map(repr, allowed))}")
    prompt_format = PromptFormat(path.stem, data["user"], data.get("assistant", "{{ output }}"),
                                 data.get("answer_prefix", ""), data.get("system"), data.get("turns", "one"),
                                 data.get("chat_template"), data.get("bos", False), data.get("encoder"),
                                 data.get("drop", "last"))
    _check_templates(prompt_format, path)
    return prompt_format


def _check_templates(prompt_format: PromptFormat, path: Path) -> None:
    import jinja2

    try:
        if prompt_format.multi_turn:
            text = prompt_format.turn_text("IN", 1, False) + prompt_format.turn_text("TEST", 2, True)
        else:
            text = prompt_format.user_text([{"input": "IN", "output": "OUT"}], "TEST")
        answer = prompt_format.assistant_text("ANSWER")
        if prompt_format.chat_template is not None:
            jinja2.Template(prompt_format.chat_template)
        if prompt_format.encoder is not None:
            create(prompt_format.encoder)
    except jinja2.TemplateError as error:
        raise ValueError(f"prompt format {path}: template error: {error}") from None
    except ValueError as error:
        raise ValueError(f"prompt format {path}: encoder: {error}") from None
    if "TEST" not in text or "IN" not in text:
        what = "{{ input }} (each grid's turn)" if prompt_format.multi_turn else "{{ test_input }} and the train samples"
        raise ValueError(f"prompt format {path}: the user template must write {what}")
    if "ANSWER" not in answer:
        raise ValueError(f"prompt format {path}: the assistant template must write {{{{ output }}}}")


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Example:
    """Token ids of one prompt, and of its answer when known (training); `n_train` pairs were shown."""

    prompt_ids: list[int]
    answer_ids: list[int]
    n_train: int
    output_spans: tuple[tuple[int, int], ...] = ()  # [start, end) in prompt_ids of each demonstration's answer

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


@dataclass(frozen=True)
class Rendered:
    """The texts of a prompt (ending where the model writes) and of its answer turn."""

    prompt: str
    answer: str  # "" when no answer was given


class PromptBuilder:
    """Renders tasks as chat prompts with one tokenizer, encoder and prompt format."""

    def __init__(self, tokenizer, encoder: GridEncoder, max_seq_len: int, prompt_format: PromptFormat | None = None,
                 system_prompt: str = ""):
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.max_seq_len = max_seq_len
        self.format = prompt_format or FORMATS[DEFAULT_FORMAT]
        self.format.check_encoder(encoder)
        self.system = system_prompt or self.format.system
        if system_prompt and self.format.chat_template is not None:
            raise ValueError(f"prompt format {self.format.name} fixes its own text, with no system message: leave "
                             "prompt.system_prompt empty")
        if self.format.chat_template is not None:
            self.template = self.format.chat_template
        else:
            self.template = None if getattr(tokenizer, "chat_template", None) else PLAIN_TEMPLATE
        bos = getattr(tokenizer, "bos_token_id", None)
        self.bos_ids = [bos] if self.format.bos and bos is not None else []
        self.end_of_turn = self._split(self.messages([], [[0]]))[1]
        self.end_ids, self.stop_token_ids = self._end_of_answer()
        stop = next((i + 1 for i, token in enumerate(self.end_ids) if token in self.stop_token_ids), len(self.end_ids))
        self.written_end_ids = self.end_ids[:stop]  # what generation writes of them: up to its stop token

    # -- text

    def messages(self, train: list[Pair], query: Grid) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        encode = self.encoder.encode
        if self.format.multi_turn:
            turns = []
            for index, pair in enumerate(train, start=1):
                turns += [{"role": "user", "content": self.format.turn_text(encode(pair.input), index, False)},
                          {"role": "assistant", "content": self.format.assistant_text(encode(pair.output))}]
            test = {"role": "user", "content": self.format.turn_text(encode(query), len(train) + 1, True)}
            return [*system, *turns, test]
        samples = [{"input": encode(p.input), "output": encode(p.output)} for p in train]
        return [*system, {"role": "user", "content": self.format.user_text(samples, encode(query))}]

    def _split(self, messages: list[dict]) -> tuple[str, str]:
        """(the conversation up to where the answer starts, what the template writes after the answer)."""
        answer = self.format.assistant_text(self.format.answer_prefix + ANSWER_MARK)
        full = self.tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}],
                                                  tokenize=False, add_generation_prompt=False,
                                                  chat_template=self.template)
        if full.count(ANSWER_MARK) != 1:
            raise ValueError("the chat template does not write the assistant's message as given; cannot render answers")
        before, after = full.split(ANSWER_MARK)
        return before, after

    def answer_text(self, grid: Grid) -> str:
        """What the model writes for `grid`: the encoded grid after the answer prefix, then the end of turn."""
        return self.encoder.encode(grid)[len(self.format.answer_prefix):] + self.end_of_turn

    def render_text(self, train: list[Pair], query: Grid, answer: Grid | None = None) -> Rendered:
        prompt, _ = self._split(self.messages(train, query))
        return Rendered(prompt, "" if answer is None else self.answer_text(answer))

    # -- tokens

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _end_of_answer(self) -> tuple[list[int], set[int]]:
        """(token ids that end every answer, token ids at which generation stops). The end of the
        template's turn when it has a special token (<|im_end|>, <|eot_id|>, ...); else an explicit
        end-of-sequence token is added, so that the model learns to stop."""
        eos = self.tokenizer.eos_token_id
        end_ids = self._ids(self.end_of_turn)
        special = set(self.tokenizer.all_special_ids)
        turn_end = next((token for token in end_ids if token in special), None)
        self.adds_eos = turn_end is None
        if turn_end is None:
            if eos is None:
                raise ValueError("the tokenizer has neither a chat template that ends turns nor an end-of-sequence token")
            return end_ids + [eos], {eos}
        return end_ids, {turn_end} | ({eos} if eos is not None else set())

    def answer_ids(self, grid: Grid) -> list[int]:
        return self._grid_ids(grid) + self.end_ids

    def written_ids(self, grid: Grid) -> list[int]:
        """The answer's tokens as the model writes them: `answer_ids` up to the token at which generation
        stops (the template's newline after <|im_end|> is never written). Scoring reads these, so that a
        sampled answer's own log-probability is its log-likelihood under the view it was sampled on."""
        return self._grid_ids(grid) + self.written_end_ids

    def _grid_ids(self, grid: Grid) -> list[int]:
        """The encoded grid's tokens after the format's answer prefix (which the prompt ends with)."""
        return self._ids(self.encoder.encode(grid)[len(self.format.answer_prefix):])

    def render(self, train: list[Pair], query: Grid, answer: Grid | None = None, outputs: bool = False) -> Example:
        """Token ids of the prompt (ending where the model writes) and of the answer turn; with `outputs`
        (multi-turn formats), where each demonstration's answer lies in the prompt, to train on it too."""
        messages = self.messages(train, query)
        prompt, _ = self._split(messages)
        spans = self._output_spans(messages, prompt, train) if outputs and train else ()
        return Example(self.bos_ids + self._ids(prompt), [] if answer is None else self.answer_ids(answer), len(train),
                       spans)

    def fit(self, train: list[Pair], query: Grid, answer: Grid | None = None, reserve: int = 0,
            outputs: bool = False) -> Example | None:
        """The prompt with as many train pairs as fit `max_seq_len` (keeping `reserve` tokens for the
        answer when it is unknown), dropping pairs from the end (from the front in the formats whose
        teams cut so: `drop = "first"`); None when not even one pair fits."""
        for count in range(len(train), 0, -1):
            kept = train[len(train) - count:] if self.format.drop == "first" else train[:count]
            example = self.render(kept, query, answer, outputs)
            if example.length + reserve <= self.max_seq_len:
                return example
        return None

    def _output_spans(self, messages: list[dict], prompt: str, train: list[Pair]) -> tuple[tuple[int, int], ...]:
        """[start, end) in the prompt's token ids (BOS included) of each demonstration's answer: from where
        the model would start writing it through its end of turn, as NVARC and the ARChitects label them."""
        if not self.format.multi_turn:
            raise ValueError(f"prompt format {self.format.name}: the loss on every output needs a multi-turn format "
                             "(turns = \"pairs\"), where each output is an answer turn")
        first = 1 if messages[0]["role"] == "system" else 0
        head = self.format.assistant_text(self.format.answer_prefix + ANSWER_MARK).split(ANSWER_MARK)[0]
        characters = []
        for k, pair in enumerate(train):
            before = self.tokenizer.apply_chat_template(messages[: first + 2 * k + 1], tokenize=False,
                                                        add_generation_prompt=True, chat_template=self.template) + head
            expected = self.encoder.encode(pair.output)[len(self.format.answer_prefix):] + self.end_of_turn
            start = len(before)
            if not prompt.startswith(before) or prompt[start: start + len(expected)] != expected:
                raise ValueError(f"prompt format {self.format.name}: the chat template writes an earlier answer turn "
                                 "otherwise than its generation prompt and end of turn say; the loss on every output "
                                 "cannot find them (set ttft.loss = 'answer')")
            characters.append((start, start + len(expected)))
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"prompt format {self.format.name}: the loss on every output finds the answers' tokens "
                             "through a fast tokenizer's offsets; this tokenizer is a slow one")
        offsets = self.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        spans = []
        for start, end in characters:
            inside = [i for i, (left, right) in enumerate(offsets) if start <= left and right <= end and right > left]
            if (not inside or inside != list(range(inside[0], inside[-1] + 1)) or offsets[inside[0]][0] != start
                    or offsets[inside[-1]][1] != end):
                raise ValueError(f"prompt format {self.format.name}: the tokenizer merges an earlier answer with the "
                                 "text around it; the loss on every output cannot find its tokens (set ttft.loss = "
                                 "'answer')")
            spans.append((inside[0] + len(self.bos_ids), inside[-1] + 1 + len(self.bos_ids)))
        return tuple(spans)

    def answer_tokens(self, grid: Grid) -> int:
        """Tokens of a grid's answer turn: the encoded grid after the prefix, plus the end of the answer."""
        return len(self.answer_ids(grid))

    # -- what an answer can be made of

    SMALL_VOCABULARY = 4096  # a vocabulary this small is scanned token by token (NVARC's has 16, the ARChitects' 76)

    @cached_property
    def answer_token_ids(self) -> frozenset[int] | None:
        """Every token id an answer can contain: the tokens made only of characters the encoder writes
        after the answer prefix, and the end of the answer. None for a large vocabulary, which is not
        scanned (every token stays possible). A token outside the set cannot be part of an answer that
        parses, so a search may skip it without losing one (NVARC's DFS: digits, newline, <|im_end|>)."""
        if len(self.tokenizer) > self.SMALL_VOCABULARY:
            return None
        probes = [[[(r * MAX_SIDE + c) % 10 for c in range(MAX_SIDE)] for r in range(MAX_SIDE)]]
        probes += [[[0] * width for _ in range(height)] for height in range(1, MAX_SIDE + 1)
                   for width in {height, MAX_SIDE + 1 - height}]
        alphabet = {char for grid in probes for char in self.encoder.encode(grid)[len(self.format.answer_prefix):]}
        special = set(self.tokenizer.all_special_ids)
        made_of_answer = set()
        for token in range(len(self.tokenizer)):
            text = self.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            if token not in special and text and set(text) <= alphabet:
                made_of_answer.add(token)
        return frozenset(made_of_answer | set(self.end_ids) | self.stop_token_ids)

    # -- what the tokenizer cannot say

    def unencodable(self) -> list[tuple[str, str]]:
        """Text the format and encoder can write (every colour, newline, a 30x30 grid, the format's fixed
        text and the chat template's, added tokens aside) that the tokenizer cannot encode: (the character,
        or the piece when each of its characters alone can be said, and what happens to it: dropped, its
        unknown token, or refused). A character the tokenizer only knows inside a word (NVARC's `user`) is
        not one of them."""
        every = [[(r * MAX_SIDE + c) % 10 for c in range(MAX_SIDE)] for r in range(MAX_SIDE)]
        colours = [list(range(10))]
        rendered = self.render_text([Pair(colours, every)], colours, every)
        pieces = self._pieces(rendered.prompt + rendered.answer)
        failing = {piece: how for piece in pieces if (how := self._fails(piece))}
        found = {}
        for char in sorted({char for piece in pieces for char in piece}):
            how = self._fails(char)
            if how and (how == "dropped" or any(char in piece for piece in failing)):
                found[char] = how
        for piece, how in failing.items():
            if not any(char in found for char in piece):
                found[piece] = how
        return sorted(found.items())

    def _pieces(self, text: str) -> set[str]:
        """The text's pieces as the tokenizer's pre-tokenizer splits it (the text itself when it has none),
        without the tokenizer's added tokens (<|im_start|>, </s>, ...)."""
        import re

        added = sorted(self.tokenizer.get_added_vocab(), key=len, reverse=True)
        parts = re.split("|".join(map(re.escape, added)), text) if added else [text]
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        splitter = backend.pre_tokenizer if backend is not None else None
        if splitter is None:
            return {part for part in parts if part}
        return {part[start:end] for part in parts for _, (start, end) in splitter.pre_tokenize_str(part) if end > start}

    def _fails(self, text: str) -> str:
        """How the tokenizer fails to encode `text` ("" when it does not)."""
        try:
            ids = self._ids(text)
        except Exception as error:  # noqa: BLE001 -- the tokenizers library raises a bare Exception for a
            # WordLevel vocabulary without its unknown token; it is reported to the user, not hidden
            return f"refused: {str(error).splitlines()[0][:60]}"
        unknown = getattr(self.tokenizer, "unk_token_id", None)
        if not ids:
            return "dropped"
        if unknown is not None and unknown in ids:
            return "its unknown token"
        return ""

    def check_vocabulary(self, format_name: str = "") -> None:
        """UserError in one line when the tokenizer cannot encode what this format and encoder write: the
        model would be fed (and trained on) other text than the format's, and lose its score silently."""
        found = self.unencodable()
        if found:
            shown = ", ".join(f"{char!r} ({how})" for char, how in found[:8]) + (" ..." if len(found) > 8 else "")
            raise UserError(f"prompt format {format_name or self.format.name!r} with encoder {self.encoder!r}: the "
                            f"tokenizer cannot encode {len(found)} character(s) they write: {shown}; choose a format "
                            "and encoder within its vocabulary")

    # -- reading answers

    def parse(self, text: str) -> Grid:
        """The grid the model wrote: the answer prefix plus its text, decoded; DecodeError when it is none."""
        return self.encoder.decode(self.format.answer_prefix + text)
