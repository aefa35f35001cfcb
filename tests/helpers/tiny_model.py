"""A tiny random Llama (2 layers, width 32) with a character-level tokenizer and a ChatML template,
built in place for CPU tests: real transformers/peft code paths in a second, no download."""

from __future__ import annotations

from pathlib import Path

from arc_submit.model.resolve import save_tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<unk>", "<|im_start|>", "<|im_end|>"]
CHARACTERS = list("0123456789 \n`#:.,x") + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + list("ñò÷ûąćďęĚĞ")


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")  # every character, newline too
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random Llama and its tokenizer into `folder` (a transformers model folder)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        tie_word_embeddings=False, initializer_range=0.3,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    return folder


# ----------------------------------------------------------------------------- three chat-template styles

# Qwen3's way (as in its tokenizer_config.json, reduced to what ARC prompts use): the last assistant turn
# after the last user message gets an empty <think></think> block before its content.
QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and loop.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message.content.lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
# Llama 3's way: a begin-of-text token, headers, trimmed contents, <|eot_id|> ending each turn (not the
# tokenizer's end-of-sequence token, which is <|end_of_text|> in the base models).
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
STYLES = {
    # style: (architecture, special tokens, eos, bos, chat template, non-special added tokens)
    "qwen3": ("qwen3", ["<|im_start|>", "<|im_end|>", "<|endoftext|>"], "<|im_end|>", None, QWEN3_TEMPLATE,
              ["<think>", "</think>"]),
    "llama3": ("llama", ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>"], "<|end_of_text|>", "<|begin_of_text|>", LLAMA3_TEMPLATE, []),
    "none": ("qwen2", ["</s>"], "</s>", None, None, []),
}


def build_styled_tokenizer(style: str):
    """A byte-level BPE tokenizer without merges (one token per byte, as Qwen's and Llama 3's tokenizers
    fall back to), with the style's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    _, specials, eos, bos, template, added = STYLES[style]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(["<unk>", *specials, *alphabet])}
    core = Tokenizer(models.BPE(vocab, [], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token=eos, pad_token=eos,
                                        bos_token=bos, additional_special_tokens=[s for s in specials if s not in (eos, bos)])
    tokenizer.add_tokens(added)
    if template:
        tokenizer.chat_template = template
    return tokenizer


def build_styled_model(folder: Path, style: str, seed: int = 0) -> Path:
    """A tiny random model of a real architecture (Qwen3, Llama, Qwen2) whose tokenizer speaks one
    chat-template style, saved as a transformers folder."""
    tokenizer = build_styled_tokenizer(style)
    stops = [tokenizer.eos_token_id] + ([tokenizer.convert_tokens_to_ids("<|eot_id|>")] if style == "llama3" else [])
    return save_tiny_model(folder, STYLES[style][0], tokenizer, stops, seed)


def save_tiny_model(folder: Path, architecture: str, tokenizer, stops: list[int], seed: int = 0,
                    head_dim: int = 16) -> Path:
    """A tiny random model of `architecture` (qwen3, llama, qwen2) over `tokenizer`'s vocabulary, saved
    with it as a transformers folder (vLLM's CPU attention wants head_dim 32 or more)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    config = AutoConfig.for_model(
        architecture, vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim, max_position_embeddings=4096,
        eos_token_id=stops, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=False, initializer_range=0.3,  # large random weights: LoRA can overfit them fast
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    return folder


# ----------------------------------------------------------------------------- the 2025 winners' tokenizers

REFERENCE = Path(__file__).parents[1] / "reference"
# Qwen2's pre-tokenizer split (as in Qwen's tokenizer.json): NVARC's tokenizer keeps it over a 16-word vocabulary.
QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
               r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def build_nvarc_tokenizer():
    """NVARC's 16-token tokenizer as the reference describes it (ARChitects/qwen3_configs/tokenizer.json in
    their repo): a WordLevel vocabulary of digits, newline ('Ċ'), `user` and `assistant` over Qwen2's byte-level
    pre-tokenizer, the three ChatML specials added, their unknown token missing from the vocabulary (so
    anything else is refused, not mapped), no BOS, and their chat template."""
    import json

    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    reference = json.loads((REFERENCE / "nvarc-prompts.json").read_text())["tokenizer"]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.WordLevel({w: i for w, i in reference["vocab"].items() if w not in specials},
                                      unk_token="<|endoftext|>"))
    core.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_SPLIT), "isolated"),
                                                  pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    core.decoder = decoders.ByteLevel()
    assert core.get_vocab() == reference["vocab"], "the built vocabulary must be NVARC's, id for id"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = reference["chat_template"]
    return tokenizer


def build_architects_tokenizer():
    """The ARChitects' shrunk single-character tokenizer as the reference describes it: the 73 kept
    characters and newline as a byte-level BPE without merges and without an unknown token (a character
    outside it is silently dropped), <s> and </s> special, <s> prepended by the post-processor."""
    import json

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    kept = json.loads((REFERENCE / "architects-prompts.json").read_text())["tokenizer"]["kept_tokens_training_code"]
    core = Tokenizer(models.BPE({token: i for i, token in enumerate(kept)}, []))
    core.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in ("<s>", "</s>")])
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", core.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="</s>")


WINNERS = {"nvarc": build_nvarc_tokenizer, "architects": build_architects_tokenizer}


def build_winner_model(folder: Path, kind: str, seed: int = 0) -> Path:
    """A tiny random Qwen3 with NVARC's 16-token tokenizer ("nvarc") or the ARChitects' single-character
    one ("architects"), saved as a transformers folder: a model of their kind, built in the test, that
    vLLM's CPU build can serve too."""
    tokenizer = WINNERS[kind]()
    return save_tiny_model(folder, "qwen3", tokenizer, [tokenizer.eos_token_id], seed, head_dim=32)
