"""`make kaggle-push` (kaggle/push.py) against the stand-in kaggle CLI (kaggle/standin.py), which does to a
folder what the CLI does and records every call: what is uploaded, in which order, and what it refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.cli import ROOT

OWNER = "ada"


def wheelhouse(folder, python: str = "3.12"):
    folder.mkdir(parents=True)
    (folder / "arc_submit-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    (folder / "pip-25.0-py3-none-any.whl").write_bytes(b"pip")
    (folder / "wheelhouse.json").write_text(json.dumps({"python": python, "pip": "pip-25.0-py3-none-any.whl"}))
    return folder


def adapter_dataset(folder, settings: str = ""):
    """A model dataset as `make kaggle-model` lays out an adapter: adapter/ and base/ (folders)."""
    for part, files in (("adapter", ["adapter_config.json", "adapter_model.safetensors"]),
                        ("base", ["config.json", "model.safetensors"])):
        (folder / part).mkdir(parents=True)
        for name in files:
            (folder / part / name).write_text(name)
    if settings:
        (folder / "arc-submit.toml").write_text(settings)
    return folder


@pytest.fixture
def kaggle(tmp_path):
    """A PATH with the stand-in `kaggle`, its server folder, and a HOME with no credentials."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kaggle").write_text(f"#!/bin/sh\nexec {sys.executable} {ROOT / 'kaggle' / 'standin.py'} \"$@\"\n")
    (bin_dir / "kaggle").chmod(0o755)
    (tmp_path / "home").mkdir()
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
            "KAGGLE_STANDIN_SERVER": str(tmp_path / "server")}


def push(tmp_path, env, *args):
    return subprocess.run([sys.executable, str(ROOT / "kaggle" / "push.py"), "--wheels", str(tmp_path / "wheels"),
                           "--model", str(tmp_path / "model"), "--out", str(tmp_path / "out"), "--poll", "0", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(ROOT)})


def calls(tmp_path):
    path = tmp_path / "server" / "calls.jsonl"
    return [json.loads(line)["argv"] for line in path.read_text().splitlines()] if path.exists() else []


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_push_uploads_both_datasets_with_their_folders_and_the_kernel_with_its_accelerator(tmp_path, kaggle):
    wheelhouse(tmp_path / "wheels")
    adapter_dataset(tmp_path / "model")
    env = {**kaggle, "KAGGLE_USERNAME": OWNER, "KAGGLE_KEY": "secret"}
    result = push(tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    server = tmp_path / "server"
    wheels = server / "datasets" / OWNER / "arc-submit-wheels"
    assert sorted(p.name for p in wheels.iterdir()) == ["arc_submit-0.1.0-py3-none-any.whl",
                                                         "pip-25.0-py3-none-any.whl", "wheelhouse.json"]
    model = server / "datasets" / OWNER / "arc-submit-model"
    assert sorted(str(p.relative_to(model)) for p in model.rglob("*") if p.is_file()) == [
        "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
        "base/config.json", "base/model.safetensors"]
    kernel = json.loads((server / "kernels" / OWNER / "arc-submit" / "kernel-metadata.json").read_text())
    assert kernel["id"] == f"{OWNER}/arc-submit" and kernel["machine_shape"] == "NvidiaL4"
    assert kernel["dataset_sources"] == [f"{OWNER}/arc-submit-wheels", f"{OWNER}/arc-submit-model"]
    assert kernel["competition_sources"] == ["arc-prize-2026-arc-agi-2"] and kernel["model_sources"] == []
    assert kernel["enable_gpu"] is True and kernel["enable_internet"] is False
    made = calls(tmp_path)
    uploads = [call for call in made if call[:2] in (["datasets", "create"], ["datasets", "version"])]
    assert all(call[call.index("--dir-mode") + 1] == "zip" for call in uploads) and len(uploads) == 2
    assert made[-1] == ["kernels", "push", "-p", str(tmp_path / "out" / "kernel"), "--accelerator", "NvidiaL4"]
    # each dataset is ready before the kernel that attaches it is pushed
    assert made.index(["datasets", "status", f"{OWNER}/arc-submit-model"], made.index(uploads[1])) < len(made) - 1
    assert (f"kaggle competitions submit arc-prize-2026-arc-agi-2 -f submission.json -k {OWNER}/arc-submit -v 1 "
            '-m "arc-submit"') in result.stdout
    # no placeholder in what was pushed, nor in the tracked templates
    pushed = "".join(p.read_text() for p in (tmp_path / "out").rglob("*-metadata.json"))
    for text in (pushed, (ROOT / "kaggle" / "kernel-metadata.json").read_text(),
                 *[(p.read_text()) for p in (ROOT / "datasets-meta").glob("*/dataset-metadata.json")]):
        assert "YOUR_KAGGLE_USERNAME" not in text
    # a second push versions the datasets instead of creating them
    again = push(tmp_path, env, "--accelerator", "kaggle-t4x2")
    assert again.returncode == 0, again.stderr
    later = calls(tmp_path)[len(made):]
    assert [call[:2] for call in later if call[1] in ("create", "version")] == [["datasets", "version"]] * 2
    assert later[-1][-2:] == ["--accelerator", "NvidiaTeslaT4"]


def test_the_clis_own_default_would_have_left_the_adapters_folders_out(tmp_path, kaggle):
    """Why --dir-mode zip: the stand-in, as the CLI, skips folders by default (the model would upload empty)."""
    folder = adapter_dataset(tmp_path / "model")
    (folder / "dataset-metadata.json").write_text(json.dumps({"id": f"{OWNER}/arc-submit-model", "title": "model"}))
    result = subprocess.run(["kaggle", "datasets", "create", "-p", str(folder)], capture_output=True, text=True,
                            env=kaggle)
    assert "Skipping folder: adapter" in result.stdout
    assert list((tmp_path / "server" / "datasets" / OWNER / "arc-submit-model").iterdir()) == []


def test_a_kaggle_model_with_settings_carried_by_the_notebook(tmp_path, kaggle):
    import nbformat

    wheelhouse(tmp_path / "wheels")
    source = "someone/nvarc-qwen3-4b/transformers/default/1"
    (tmp_path / "server" / "models" / source).mkdir(parents=True)
    env = {**kaggle, "KAGGLE_API_TOKEN": "token", "KAGGLE_STANDIN_USER": OWNER}  # the owner from `kaggle config view`
    result = push(tmp_path, env, "--model-sources", source, "--config", "nvarc", "--set", "ttft.steps=64")
    assert result.returncode == 0, result.stdout + result.stderr
    kernel = tmp_path / "server" / "kernels" / OWNER / "arc-submit"
    metadata = json.loads((kernel / "kernel-metadata.json").read_text())
    assert metadata["model_sources"] == [source] and metadata["dataset_sources"] == [f"{OWNER}/arc-submit-wheels"]
    assert not (tmp_path / "server" / "datasets" / OWNER / "arc-submit-model").exists()
    notebook = nbformat.read(kernel / "arc-submit.ipynb", as_version=4)
    nbformat.validate(notebook)
    namespace = {}
    first = next(cell.source for cell in notebook.cells if "NOTEBOOK_SETTINGS = " in cell.source)
    exec(next(line for line in first.splitlines() if line.startswith("NOTEBOOK_SETTINGS = ")), namespace)
    from arc_submit.config import load_config

    (tmp_path / "carried.toml").write_text(namespace["NOTEBOOK_SETTINGS"])
    used = load_config(f"kaggle-l4x4+{tmp_path / 'carried.toml'}")
    assert (used.prompt.format, used.ttft.steps) == ("nvarc", 64)
    # the tracked notebook carries nothing
    tracked = nbformat.read(ROOT / "kaggle" / "arc-submit.ipynb", as_version=4)
    assert 'NOTEBOOK_SETTINGS = ""' in tracked.cells[1].source


@pytest.mark.parametrize("case, expected", [
    ("no cli", "no `kaggle` command on PATH"),
    ("no credentials", "no Kaggle credentials"),
    ("no owner", "the Kaggle user is unknown"),
    ("no wheelhouse", "no wheelhouse.json; build the wheelhouse first (`make kaggle-wheels`)"),
    ("wheelhouse for 3.11", "was built for Python 3.11, and Kaggle's image runs 3.12"),
    ("no model", "no model:"),
    ("bad accelerator", "ACCELERATOR=GPU: not an accelerator the kaggle CLI documents"),
    ("p100", "too old for the shipped torch"),
    ("bad model source", "is not OWNER/MODEL/FRAMEWORK/VARIATION/VERSION"),
    ("settings twice", "two sources of settings"),
    ("unknown setting", "unknown setting 'stepz'"),
])
def test_a_push_that_cannot_work_is_refused_in_one_line_before_uploading(tmp_path, kaggle, case, expected):
    env = {**kaggle, "KAGGLE_USERNAME": OWNER, "KAGGLE_KEY": "secret"}
    args = []
    if case != "no wheelhouse":
        wheelhouse(tmp_path / "wheels", python="3.11" if case == "wheelhouse for 3.11" else "3.12")
    if case != "no model":
        adapter_dataset(tmp_path / "model", settings="[ttft]\nsteps = 8\n" if case == "settings twice" else "")
    if case == "no cli":
        env["PATH"] = "/usr/bin:/bin"
    if case == "no credentials":
        env = {key: value for key, value in env.items() if key not in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    if case == "no owner":
        env = {**{key: value for key, value in env.items() if key != "KAGGLE_USERNAME"}, "KAGGLE_API_TOKEN": "token"}
    args = {"bad accelerator": ["--accelerator", "GPU"], "p100": ["--accelerator", "NvidiaTeslaP100"],
            "bad model source": ["--model-sources", "someone/model"], "settings twice": ["--config", "nvarc"],
            "unknown setting": ["--set", "ttft.stepz=64"]}.get(case, [])
    result = push(tmp_path, env, *args)
    assert expected in one_line(result)
    assert [call for call in calls(tmp_path) if call[0] != "config" and call[:1] != ["--version"]] == []


def test_an_error_the_cli_prints_with_status_0_stops_the_push(tmp_path, kaggle):
    """The CLI prints a service's refusal (here: a Kaggle Model it does not know) and exits 0: the push fails."""
    wheelhouse(tmp_path / "wheels")
    env = {**kaggle, "KAGGLE_USERNAME": OWNER, "KAGGLE_KEY": "secret"}
    result = push(tmp_path, env, "--model-sources", "someone/missing/transformers/default/1")
    assert "`kaggle kernels push` failed: The following are not valid dataset sources" in one_line(result)
    assert "kaggle competitions submit" not in result.stdout
