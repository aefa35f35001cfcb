"""Reading and writing the project's JSON files: one-line errors on reading, atomic replacement on writing.

Every file arc-submit writes (submission, predictions, run records) goes through `write_json`, so a crash
or a full disk never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from arc_submit.errors import UserError
from arc_submit.faults import inject_write


def read_json(path: str | os.PathLike) -> object:
    """Parse a JSON file; a missing file, bad JSON or a duplicated key is a one-line UserError."""
    path = Path(path)
    duplicates: list[str] = []

    def refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
        seen: dict = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file, object_pairs_hook=refuse_duplicates)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, a JSON file was expected") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read: {error.strerror}") from None
    if duplicates:
        keys = ", ".join(repr(key) for key in sorted(set(duplicates)))
        raise UserError(f"{path}: duplicate key {keys}: a later value would silently replace an earlier one")
    return data


def write_json(path: str | os.PathLike, data: object, indent: int | None = None) -> None:
    """Write JSON to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    write_text(path, json.dumps(data, indent=indent) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` atomically: readers see the old file or the new one, never a part, and
    no temporary file is left behind (a full disk included: OSError naming `path`). The file gets the
    permissions the umask gives, as `open` would (mkstemp's 0600 would hide it from other users)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            inject_write(path.name)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def temporary_folder(target: Path) -> Path:
    """A new empty folder beside `target`, to fill and then rename over it, with the permissions the umask
    gives, as `mkdir` would (mkdtemp's 0700 would hide a checkpoint or a model from other users)."""
    folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    folder.chmod(0o777 & ~_umask())
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
