"""Configuration: one dataclass per stage, each field with its help text, checked on creation.

The dataclass defaults are the common base that presets are laid over, not a configuration meant to run
alone: every command starts from a preset (`--config cpu` unless told otherwise), and what the preset leaves
unset comes from here. `python -m arc_submit config --config cpu` prints what a command runs with a preset
(`--diff`: only what the preset changes).

Presets are TOML files shipped in `arc_submit/presets/` (`--config smoke`), or any TOML path; flags
and `--set section.field=value` override them; the resolved config is saved as `config.toml` in the
run dir. `python -m arc_submit run --config smoke --set ttft.steps=4` shows the whole flow; docs/config.md
lists every setting (`python -m arc_submit config --markdown` writes it).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from arc_submit.errors import UserError

log = logging.getLogger("arc_submit")

PRESETS_PACKAGE = "arc_submit.presets"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def option(default, help: str):
    """A config field with its help text (lists get a fresh copy per instance)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _check(condition: bool, name: str, value, expected: str) -> None:
    if not condition:
        raise ValueError(f"{name} = {value!r}: {expected}")


@dataclass
class ModelConfig:
    """The model that is fine-tuned and sampled, and the dtype it runs in."""

    name: str = option("smollm2-135m", "alias 'smollm2-135m' (embedded), a transformers folder, or a LoRA adapter folder")
    base: str = option("", "base model of an adapter folder, when its recorded base path is not on this machine")
    dtype: str = option("auto", "float32 | bfloat16 | float16 | auto (float32 on CPU, bfloat16 on GPUs that have it)")

    def __post_init__(self):
        _check(self.dtype in DTYPES, "model.dtype", self.dtype, f"one of {', '.join(DTYPES)}")
        _check(bool(self.name), "model.name", self.name, "a model alias or folder")


@dataclass
class PromptConfig:
    """How a task becomes text: the prompt format, the grid encoder, and the longest prompt."""

    format: str = option("arc-submit", "prompt format: arc-submit | arc-submit-turns (the same, one turn per grid) | "
                                       "arc24-v0 | arc24-v1 (ironbar/arc24's "
                                       "output-from-examples-v0/-v1) | nvarc (NVARC's multi-turn ChatML, 2025) | "
                                       "architects (the ARChitects' 2024 text) | a TOML file of Jinja templates "
                                       "(user, assistant, answer_prefix, system, turns, chat_template, bos, encoder)")
    encoder: str = option("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
                          "grid encoder spec; left at this default, a format trained with its own (nvarc, "
                          "architects: MinimalGridEncoder()) gets that one")
    system_prompt: str = option("", "system message instead of the format's own; empty keeps the format's (for "
                                    "arc-submit: none, so the chat template's default)")
    max_seq_len: int = option(8192, "longest prompt + answer in tokens; train pairs are dropped to fit; at most "
                                    "the model's context length")

    def __post_init__(self):
        from arc_submit.data.encoders import DEFAULT_ENCODER, create
        from arc_submit.data.prompts import load_format

        try:
            encoder = create(self.encoder)
        except ValueError as error:
            raise ValueError(f"prompt.encoder: {error}") from None
        try:
            prompt_format = load_format(self.format)
            if prompt_format.encoder is not None and encoder == create(DEFAULT_ENCODER):
                self.encoder = prompt_format.encoder  # the run's config.toml shows the encoder used
                encoder = create(self.encoder)
            prompt_format.check_encoder(encoder)
            if self.system_prompt and prompt_format.chat_template is not None:
                raise ValueError(f"prompt format {prompt_format.name} fixes its own text, with no system message: "
                                 "leave prompt.system_prompt empty")
        except ValueError as error:
            raise ValueError(f"prompt.format: {error}") from None
        _check(self.max_seq_len >= 64, "prompt.max_seq_len", self.max_seq_len, "at least 64")


@dataclass
class AugmentConfig:
    """The random views of a task: geometry, colours, the order of its train pairs."""

    geometric: bool = option(True, "draw one of the 8 rotations/reflections")
    permute_colours: bool = option(True, "draw a colour permutation")
    keep_background: bool = option(True, "keep colour 0 fixed when permuting colours")
    shuffle_train: bool = option(True, "shuffle the order of the train pairs")
    move_background: float = option(0.0, "with keep_background: the probability that colour 0 is permuted too "
                                          "(arc24 moved it in about 10% of its views)")

    def __post_init__(self):
        _check(0 <= self.move_background <= 1, "augment.move_background", self.move_background, "in [0, 1]")

    def draw_options(self) -> dict:
        return dataclasses.asdict(self)


# The names of the strategies each registry holds (the registries live in the wings that use them, and
# tests check that these lists match them): config sits below model/ and predict/ and imports neither.
SCHEDULES = ("linear", "constant", "cosine", "cosine_restarts", "cyclic")  # arc_submit.model.schedules
VOTING_RULES = ("vote", "poe", "nvarc", "architects")  # arc_submit.predict.selection.RULES
SAMPLING_METHODS = ("sample", "dfs")
SAMPLING_BACKENDS = ("vllm", "transformers")  # arc_submit.predict.sampler.BACKENDS
ADAPTER_SERVING = ("merged", "lora")
SCORERS = ("auto", "engine", "model")
LOSSES = ("answer", "outputs", "auto")


@dataclass
class TTFTConfig:
    """Test-time fine-tuning: a LoRA adapter trained on each task's own examples (or one on every task) before
    sampling."""

    SECTION = "ttft"  # where the settings live, for messages (TrainConfig inherits them under [train])

    steps: int = option(100, "optimizer steps per task (0 = no test-time fine-tuning)")
    learning_rate: float = option(1e-4, "peak learning rate")
    batch_size: int = option(1, "examples per micro-batch")
    gradient_accumulation: int = option(1, "micro-batches per optimizer step")
    schedule: str = option("linear", "linear | constant | cosine | cosine_restarts | cyclic")
    warmup_fraction: float = option(0.1, "share of the steps spent warming up (all schedules but cyclic)")
    restarts: int = option(2, "cosine_restarts: number of cosine cycles")
    cycles: int = option(3, "cyclic: number of cycles")
    cycle_decay: float = option(0.5, "cyclic: peak of each cycle relative to the previous one")
    cycle_warmup: float = option(0.2, "cyclic: share of each cycle spent rising to its peak")
    lora_rank: int = option(32, "LoRA rank")
    lora_alpha: float = option(64.0, "LoRA alpha (scaling = alpha / rank)")
    lora_dropout: float = option(0.0, "LoRA dropout")
    rslora: bool = option(False, "rank-stabilised LoRA: scaling alpha / sqrt(rank) instead of alpha / rank (NVARC "
                                 "and the ARChitects train so)")
    target_modules: list = option(["all-linear"], "modules that get LoRA, or ['all-linear']")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 = off)")
    eval_every: int = option(0, "log an eval loss on held-out augmented examples every k steps (0 = never)")
    eval_examples: int = option(4, "number of held-out augmented examples for the eval loss")
    scope: str = option("task", "task (one adapter per task) | all (one adapter trained on every task)")
    backend: str = option("peft", "peft (unsloth was removed: see docs/pipeline.md#training)")
    gradient_checkpointing: bool = option(False, "trade compute for memory in training")
    loss: str = option("answer", "answer (the held-out pair's output only) | outputs (every output of the "
                                 "conversation, each demonstration's too, as NVARC and the ARChitects train; "
                                 "needs a multi-turn prompt format) | auto (outputs when the prompt format has "
                                 "one turn per grid, else answer; the config saved with a run says which)")
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"help": "augmentation of examples"})

    def every_output(self, multi_turn: bool) -> bool:
        """Whether training puts the loss on every output of the conversation, for a format that has one turn
        per grid (`multi_turn`) or not."""
        return self.loss == "outputs" or (self.loss == "auto" and multi_turn)

    def __post_init__(self):
        for name in ("steps", "restarts", "cycles"):
            _check(getattr(self, name) >= 0, f"{self.SECTION}.{name}", getattr(self, name), "0 or more")
        for name in ("batch_size", "gradient_accumulation", "lora_rank", "eval_examples"):
            _check(getattr(self, name) >= 1, f"{self.SECTION}.{name}", getattr(self, name), "1 or more")
        _check(self.learning_rate > 0, f"{self.SECTION}.learning_rate", self.learning_rate, "positive")
        _check(self.schedule in SCHEDULES, f"{self.SECTION}.schedule", self.schedule, f"one of {', '.join(SCHEDULES)}")
        for name in ("warmup_fraction", "cycle_warmup", "lora_dropout"):
            _check(0 <= getattr(self, name) < 1, f"{self.SECTION}.{name}", getattr(self, name), "in [0, 1)")
        _check(0 < self.cycle_decay <= 1, f"{self.SECTION}.cycle_decay", self.cycle_decay, "in (0, 1]")
        _check(self.scope in ("task", "all"), f"{self.SECTION}.scope", self.scope, "'task' or 'all'")
        _check(self.loss in LOSSES, f"{self.SECTION}.loss", self.loss, f"one of {', '.join(LOSSES)}")
        if self.backend == "unsloth":
            raise ValueError(f"{self.SECTION}.backend = 'unsloth' was removed: unsloth trains only models loaded by "
                             f"its own loader, which arc-submit does not use; set {self.SECTION}.backend = 'peft'")
        _check(self.backend == "peft", f"{self.SECTION}.backend", self.backend, "'peft'")
        _check(bool(self.target_modules), f"{self.SECTION}.target_modules", self.target_modules, "a non-empty list")


@dataclass
class TrainConfig(TTFTConfig):
    """Fine-tuning on ARC tasks (`python -m arc_submit train`) with TTFT's own training code: every ttft setting,
    inherited and read under [train] (a preset's [ttft] values do not reach it), and what a long run needs
    besides; below, only what train adds or gives another default."""

    SECTION = "train"

    steps: int = option(1000, "optimizer steps of the whole training")
    scope: str = option("task", "not read: train trains one adapter (or all weights) on all its tasks")
    method: str = option("lora", "lora (an adapter; checkpoints are adapter folders) | full (all weights)")
    val_tasks: int = option(1, "tasks held out (chosen by the seed) for the validation loss; 0 = none")
    eval_every: int = option(50, "validation loss every k steps (0 = never)")
    eval_examples: int = option(8, "fixed augmented examples of the held-out tasks for the validation loss")
    save_every: int = option(100, "a checkpoint-N folder every k steps (and at the end)")
    log_every: int = option(10, "a log_history entry (trainer_state.json) every k steps; TensorBoard gets every step")
    wandb: bool = option(True, "also log to Weights & Biases, offline, when wandb is installed")

    def __post_init__(self):
        super().__post_init__()
        _check(self.method in ("lora", "full"), "train.method", self.method, "'lora' or 'full'")
        for name in ("val_tasks", "eval_every"):
            _check(getattr(self, name) >= 0, f"train.{name}", getattr(self, name), "0 or more")
        for name in ("save_every", "log_every"):
            _check(getattr(self, name) >= 1, f"train.{name}", getattr(self, name), "1 or more")


@dataclass
class SamplingConfig:
    """How candidates are drawn: the engine, the views (augmented prompts), the decoding, the engine's memory."""

    RENAMED = {"views": "view_draw"}  # old name -> new: read with a warning for one release (see _renamed)

    backend: str = option("vllm", "vllm (CUDA or CPU build) | transformers")
    augmentations: int = option(8, "augmented prompts (views) per test input (the identity first)")
    view_draw: str = option("balanced", "how each test input's views are drawn: balanced (each of the 8 "
                                        "rotations/reflections equally often) | random")
    method: str = option("sample", "sample (one completion per prompt at temperature 0, or `samples` above it) | "
                                   "dfs (every completion with probability >= min_prob, depth first)")
    min_prob: float = option(0.1, "dfs: the least probability of a completion that is kept")
    max_candidates: int = option(8, "dfs: the most completions kept per prompt")
    samples: int = option(1, "samples per augmented prompt (must be 1 at temperature 0)")
    temperature: float = option(0.0, "sampling temperature (0 = greedy)")
    max_new_tokens: int = option(0, "bound on answer tokens; 0 = the answer turn of a 30x30 grid (never cuts an answer)")
    max_new_tokens_from: str = option("task", "the answer room kept when fitting a prompt into max_seq_len: task (a "
                                              "square grid of the task's largest side) | grid30 (a 30x30 grid)")
    adapter: str = option("merged", "merged (each task's adapter merged and pushed into the engine) | lora (vLLM "
                                    "serves the adapter: no merge, no push)")
    check_pushes: bool = option(True, "after each weight push, compare the engine's log-probabilities on a probe "
                                      "with the trained model's; stop on a mismatch")
    gpu_memory_utilization: float = option(0.5, "vLLM on CUDA: share of GPU memory for weights and KV cache")
    kv_cache_gib: float = option(2.0, "vLLM on CPU: KV cache size in GiB")
    kv_cache_prompts: int = option(0, "vLLM on CUDA: a KV cache that holds this many prompts of prompt.max_seq_len, "
                                      "given to vLLM in bytes (kv_cache_memory_bytes) and so the same whatever else "
                                      "the card holds; 0 = what gpu_memory_utilization leaves after weights and "
                                      "vLLM's reserve")
    enforce_eager: bool = option(True, "vLLM: skip graph capture (faster start, slower decoding)")
    max_batched_tokens: int = option(0, "vLLM: the most tokens one engine step computes (max_num_batched_tokens; "
                                        "0 = vLLM's default, 8192 on GPUs under 70 GiB, 4096 on CPU); bounds poe/nvarc "
                                        "scoring, whose log-softmax over the vocabulary takes 8 bytes x vocabulary per "
                                        "token. On CPU at least prompt.max_seq_len x samples: a seeded sampling must "
                                        "never cut a prompt in parts there (torch's CPU generators cannot rewind)")
    block_size: int = option(0, "vLLM: tokens per KV cache block; prefix-cache hits land on block boundaries, so "
                                "each scored candidate computes its view's prompt again from the last boundary. 0 = "
                                "32 on CPU where vLLM reads its prefix cache to score (0.32; a multiple of 32 there), "
                                "else vLLM's default (128 on CPU, 16 on GPUs)")
    sleep_while_training: bool = option(False, "vLLM on CUDA: free the engine's GPU memory (sleep mode) during "
                                               "TTFT, so training and the engine share one GPU")
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"help": "augmentation of prompts"})

    def __post_init__(self):
        _check(self.backend in SAMPLING_BACKENDS, "sampling.backend", self.backend, f"one of {', '.join(SAMPLING_BACKENDS)}")
        _check(self.augmentations >= 1, "sampling.augmentations", self.augmentations, "1 or more")
        _check(self.samples >= 1, "sampling.samples", self.samples, "1 or more")
        _check(self.temperature >= 0, "sampling.temperature", self.temperature, "0 or more")
        if self.temperature == 0 and self.samples > 1:
            raise ValueError(
                f"sampling.samples = {self.samples} with sampling.temperature = 0: greedy decoding gives one answer"
                " per prompt; raise sampling.temperature or set sampling.samples = 1"
            )
        _check(self.max_new_tokens >= 0, "sampling.max_new_tokens", self.max_new_tokens, "0 (auto) or more")
        _check(self.view_draw in ("balanced", "random"), "sampling.view_draw", self.view_draw,
               "'balanced' or 'random'")
        _check(self.method in SAMPLING_METHODS, "sampling.method", self.method, f"one of {', '.join(SAMPLING_METHODS)}")
        _check(0.04 <= self.min_prob <= 1, "sampling.min_prob", self.min_prob, "in [0.04, 1] (at most 25 tokens per "
                                                                               "step can reach it)")
        _check(self.max_candidates >= 1, "sampling.max_candidates", self.max_candidates, "1 or more")
        _check(self.block_size >= 0 and self.block_size % 16 == 0, "sampling.block_size", self.block_size,
               "0 (auto) or a multiple of 16")
        if self.method == "dfs" and self.samples > 1:
            raise ValueError("sampling.method = 'dfs' finds every completion above min_prob: set sampling.samples = 1")
        _check(self.max_new_tokens_from in ("task", "grid30"), "sampling.max_new_tokens_from",
               self.max_new_tokens_from, "'task' or 'grid30'")
        _check(0 < self.gpu_memory_utilization <= 1, "sampling.gpu_memory_utilization",
               self.gpu_memory_utilization, "in (0, 1]")
        _check(self.kv_cache_prompts >= 0, "sampling.kv_cache_prompts", self.kv_cache_prompts,
               "0 (from gpu_memory_utilization) or more")
        _check(self.max_batched_tokens == 0 or self.max_batched_tokens >= 256, "sampling.max_batched_tokens",
               self.max_batched_tokens, "0 (vLLM's default) or at least 256")
        _check(self.adapter in ADAPTER_SERVING, "sampling.adapter", self.adapter, f"one of {', '.join(ADAPTER_SERVING)}")
        if self.adapter == "lora" and self.backend != "vllm":
            raise ValueError("sampling.adapter = 'lora' needs sampling.backend = 'vllm' (vLLM serves LoRA adapters)")


@dataclass
class VotingConfig:
    """How the two attempts are chosen among the candidates."""

    RENAMED = {"views": "scoring_views"}  # old name -> new: read with a warning for one release (see _renamed)

    rule: str = option("vote", "vote (count, then mean per-token log-probability) | poe (sum of log-likelihoods "
                               "under `scoring_views` views) | nvarc (count minus mean NLL over the views) | "
                               "architects (their 2024 probmul: sum of each hit's and each view's log-likelihood + 3)")
    scoring_views: int = option(8, "poe, nvarc and architects: views each distinct candidate is scored under")
    scorer: str = option("auto", "what scores the candidates: engine (the sampler, with the weights it serves) | "
                                 "model (the transformers model in memory, the task's adapter kept attached: a "
                                 "view's prompt prefilled once for all its candidates) | auto (the engine where it "
                                 "reads its prefix cache to score (vLLM 0.32); else the model for vLLM on CPU, "
                                 "which prefills a view's prompt once for all its candidates where the engine "
                                 "prefills it per candidate; the engine otherwise)")

    def __post_init__(self):
        _check(self.rule in VOTING_RULES, "voting.rule", self.rule, f"one of {', '.join(VOTING_RULES)}")
        _check(self.scoring_views >= 1, "voting.scoring_views", self.scoring_views, "1 or more")
        _check(self.scorer in SCORERS, "voting.scorer", self.scorer, f"one of {', '.join(SCORERS)}")


@dataclass
class RunConfig:
    """The run as a whole: its seed, tasks, time budget, threads, workers, and what an error costs."""

    seed: int = option(0, "drives every random choice; each task's seed derives from (seed, task_id)")
    limit: int = option(0, "run only the first N tasks (0 = all); the submission still covers every task")
    time_budget: float = option(0.0, "seconds for the whole run (0 = none); work is cut to end in time")
    reserve_fraction: float = option(0.05, "share of the time budget kept back as a safety margin")
    threads: int = option(0, "CPU threads for torch (0 = all cores)")
    worker_timeout: float = option(1200.0, "--workers: seconds a worker may stay silent (no stage or training step "
                                           "reported) before it is taken for hung, killed and its task retried")
    on_error: str = option("stop", "stop (a configuration or code error in a task stops the run: local work) | "
                                   "degrade (it costs only its task: redone with the base model, else fallbacks; "
                                   "the Kaggle presets, and any run with KAGGLE_IS_COMPETITION_RERUN set)")

    def __post_init__(self):
        _check(self.on_error in ("stop", "degrade"), "run.on_error", self.on_error, "'stop' or 'degrade'")
        _check(self.limit >= 0, "run.limit", self.limit, "0 or more")
        _check(self.time_budget >= 0, "run.time_budget", self.time_budget, "0 (none) or more seconds")
        _check(0 <= self.reserve_fraction < 1, "run.reserve_fraction", self.reserve_fraction, "in [0, 1)")
        _check(self.worker_timeout > 0, "run.worker_timeout", self.worker_timeout, "positive seconds")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    ttft: TTFTConfig = field(default_factory=TTFTConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    voting: VotingConfig = field(default_factory=VotingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        from arc_submit.data.prompts import load_format

        multi_turn = load_format(self.prompt.format).multi_turn  # read once: a TOML format is a file
        for section in (self.ttft, self.train):
            if section.loss == "auto":  # resolved here, so that config.toml says what was trained
                section.loss = "outputs" if section.every_output(multi_turn) else "answer"
            if section.loss == "outputs" and not multi_turn:
                raise ValueError(f"{section.SECTION}.loss = 'outputs' trains on every output turn, but prompt.format "
                                 f"{self.prompt.format!r} puts the task in one message: choose a multi-turn format "
                                 "(arc-submit-turns, nvarc, architects, or a TOML one with turns = \"pairs\"), or "
                                 f"set {section.SECTION}.loss = 'answer'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- building from TOML


def _renamed(cls, data: dict, where: str) -> dict:
    """`data` with a setting's old name (a class's RENAMED) read as its new one, and a one-line warning naming
    both: TOML files and --set lines users already have keep working for one release. Both names at once
    are refused."""
    renamed = getattr(cls, "RENAMED", {})
    if not renamed.keys() & data.keys():
        return data
    section = where.rsplit(".", 1)[-1]
    data = dict(data)
    for old, new in renamed.items():
        if old not in data:
            continue
        if new in data:
            raise UserError(f"{where}: both {old!r} and {new!r}: {section}.{old} is the old name of {section}.{new}; "
                            f"keep {new!r} only")
        log.warning("%s.%s: renamed %s.%s; the old name is read until the next release", section, old, section, new)
        data[new] = data.pop(old)
    return data


def _build(cls, data: dict, where: str):
    """An instance of the dataclass `cls` from nested dicts, naming unknown keys and wrong types."""
    data = _renamed(cls, data, where)
    known = {f.name: f for f in fields(cls)}
    unknown = [key for key in data if key not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{where}: unknown setting {unknown[0]!r}{hint}; known: {', '.join(known)}")
    defaults = cls()
    values = {}
    for key, value in data.items():
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise UserError(f"{where}.{key}: is {value!r}, expected a table of settings")
            values[key] = _build(type(default), value, f"{where}.{key}")
        else:
            values[key] = _coerce(value, default, f"{where}.{key}")
    try:
        return cls(**values)
    except ValueError as error:
        raise UserError(f"{where}: {error}") from None


def _coerce(value, default, where: str):
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, str) and isinstance(value, str):
        return value
    elif isinstance(default, list) and isinstance(value, list):
        return value
    raise UserError(f"{where}: {value!r} is not of type {type(default).__name__}")


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(PRESETS_PACKAGE).iterdir() if p.name.endswith(".toml"))


def read_toml(name_or_path: str) -> tuple[dict, str]:
    """The parsed TOML of a preset name or a file path, and where it came from."""
    path = Path(name_or_path)
    if name_or_path in preset_names():
        text = resources.files(PRESETS_PACKAGE).joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
        source = f"preset {name_or_path}"
    elif path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"--config {path}: cannot be read: {error.strerror}") from None
        source = str(path)
    else:
        raise UserError(f"--config {name_or_path}: not a preset ({', '.join(preset_names())}) nor a .toml file")
    try:
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{source}: not valid TOML: {error}") from None


def parse_override(text: str) -> tuple[list[str], object]:
    """`section.field=value` -> (['section', 'field'], value); the value is read as TOML, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected section.field=value, e.g. ttft.steps=8")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def read_layers(name_or_path: str) -> tuple[dict, str]:
    """A preset or TOML file, or several joined by `+` (`kaggle-l4x4+nvarc`: a GPU preset, then a recipe
    laid over it, table by table; the last one wins where both set a value)."""
    if name_or_path in preset_names() or Path(name_or_path).exists() or "+" not in name_or_path:
        return read_toml(name_or_path)
    data, sources = {}, []
    for part in _layers(name_or_path):
        layer, source = read_toml(part)
        _lay(data, layer)
        sources.append(source)
    return data, " + ".join(sources)


def _layers(joined: str) -> list[str]:
    """`a+b+c` split into presets and files, a path that holds a `+` itself kept whole (the shortest piece
    that names a preset or an existing file is taken first; what is left over is read, and refused, as it is)."""
    layers, piece = [], ""
    for part in joined.split("+"):
        piece = f"{piece}+{part}" if piece else part
        if piece in preset_names() or Path(piece).exists():
            layers.append(piece)
            piece = ""
    return layers + ([piece] if piece else [])


def _lay(data: dict, layer: dict) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            _lay(data[key], value)
        else:
            data[key] = value


def load_config(name_or_path: str | None = None, overrides: list[str] = (), **flags) -> Config:
    """Defaults < preset or TOML file (or several, `a+b`) < `--set` overrides < explicit flags (model.name=...,
    run.seed=...)."""
    data, source = read_layers(name_or_path) if name_or_path else ({}, "defaults")
    for text in overrides:
        path, value = parse_override(text)
        _set(data, path, value)
    for dotted, value in flags.items():
        if value is not None:
            _set(data, dotted.split("."), value)
    return _build(Config, data, source)


def _set(data: dict, path: list[str], value) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise UserError(f"setting {'.'.join(path)}: {key} is not a section")
    data[path[-1]] = value


# ----------------------------------------------------------------------------- writing TOML


def to_toml(config: Config) -> str:
    """The resolved config as TOML that `load_config` reads back to an equal Config."""
    return dict_to_toml(config.to_dict())


def dict_to_toml(data: dict) -> str:
    """Nested tables of plain values as TOML text that tomllib reads back as `data`."""
    lines: list[str] = []
    _write_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def layered_settings(name_or_path: str, overrides: list[str] = ()) -> dict:
    """The raw settings of config layers (`a+b`) and `--set` overrides, before defaults and checks."""
    data = read_layers(name_or_path)[0] if name_or_path else {}
    for text in overrides:
        path, value = parse_override(text)
        _set(data, path, value)
    return data


def flat_settings(data: dict, prefix: str = "") -> list[str]:
    """`section.field = value` for every setting of nested tables."""
    found = []
    for key, value in data.items():
        found += (flat_settings(value, f"{prefix}{key}.") if isinstance(value, dict)
                  else [f"{prefix}{key} = {toml_value(value)}"])
    return found


def carried_settings(config: str, overrides: list[str], command: str) -> tuple[str, list[str]]:
    """Settings that travel to Kaggle with a model (its arc-submit.toml) or with the notebook (`make COMMAND
    CONFIG=... SET=...`): their TOML text, checked as the notebook will use it (laid over each Kaggle preset),
    and the settings as `section.field = value` lines. model.name and model.base are left out: on Kaggle the
    notebook names the model it finds."""
    import tempfile

    given = " ".join([f"CONFIG={config}"] * bool(config) + [f'SET="{" ".join(overrides)}"'] * bool(overrides))
    data = layered_settings(config, overrides)
    dropped = [key for key in ("name", "base") if key in data.get("model", {})]
    for key in dropped:
        del data["model"][key]
    if "model" in data and not data["model"]:
        del data["model"]
    text = f"# written by make {command}: the notebook lays it over its GPU preset\n" + dict_to_toml(data)
    with tempfile.TemporaryDirectory() as folder:
        check = Path(folder) / "arc-submit.toml"
        check.write_text(text)
        for preset in [name for name in preset_names() if name.startswith("kaggle-")]:
            try:
                load_config(f"{preset}+{check}")
            except UserError as error:
                raise UserError(error.problems[0].replace(str(check), f"the settings to carry ({given})")) from None
    return text, flat_settings(data) + [f"(model.{key} left out: the notebook names the model it finds)" for key in dropped]


def _write_table(table: dict, path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if path:
        lines.append(f"\n[{'.'.join(path)}]")
    lines += [f"{key} = {toml_value(value)}" for key, value in scalars.items()]
    for key, value in table.items():
        if isinstance(value, dict):
            _write_table(value, [*path, key], lines)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
