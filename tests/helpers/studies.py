"""For the studies' tests: a PNG's size read from its header, and a TOML of tiny settings for the tiny model
(what `--config` takes)."""

from __future__ import annotations

import struct


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def tiny_toml(tmp_path, model_dir):
    path = tmp_path / "tiny.toml"
    path.write_text(f'[model]\nname = "{model_dir}"\n[ttft]\nsteps = 2\nlora_rank = 4\nlora_alpha = 8.0\n'
                    'eval_every = 1\n[sampling]\nbackend = "transformers"\naugmentations = 2\nmax_new_tokens = 16\n')
    return path
