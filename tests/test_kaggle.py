"""The Kaggle files parse and hold what Kaggle's tools require. (`make kaggle-sim` runs the notebook.)"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests.helpers.cli import ROOT

KERNEL_FIELDS = {"id", "title", "code_file", "language", "kernel_type", "is_private", "enable_gpu",
                 "enable_internet", "dataset_sources", "competition_sources", "kernel_sources", "model_sources"}


def test_the_notebook_is_valid_nbformat_4_and_its_code_parses():
    notebook = nbformat.read(ROOT / "kaggle" / "arc-submit.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    for source in code:
        ast.parse(source)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    joined = "\n".join(code)
    assert "--no-index" in joined and "KAGGLE_IS_COMPETITION_RERUN" in joined and "validate" in joined
    assert "if PLACEHOLDER:\n        raise RuntimeError" in code[-1]  # a degraded placeholder run is not missed


def test_kernel_metadata_has_the_fields_the_kaggle_cli_requires():
    """The tracked template: kaggle/push.py adds the owner, sources and accelerator (tests/test_kaggle_push.py)."""
    metadata = json.loads((ROOT / "kaggle" / "kernel-metadata.json").read_text())
    assert KERNEL_FIELDS <= set(metadata) and "/" not in metadata["id"]
    assert (ROOT / "kaggle" / metadata["code_file"]).is_file() and len(metadata["title"]) >= 5
    assert metadata["language"] == "python" and metadata["kernel_type"] == "notebook"
    assert metadata["enable_gpu"] is True and metadata["enable_internet"] is False and metadata["is_private"] is True
    default = re.search(r"^KAGGLE_COMPETITION \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert default == "arc-prize-2026-arc-agi-2"


@pytest.mark.parametrize("name", ["arc-submit-wheels", "arc-submit-model"])
def test_dataset_metadata_has_title_id_and_licence(name):
    metadata = json.loads((ROOT / "datasets-meta" / name / "dataset-metadata.json").read_text())
    assert 6 <= len(metadata["title"]) <= 50
    assert metadata["id"] == name  # the slug; the owner is added when pushed
    assert metadata["licenses"] and "name" in metadata["licenses"][0]


def notebook_cell(starting: str) -> str:
    notebook = nbformat.read(ROOT / "kaggle" / "arc-submit.ipynb", as_version=4)
    [source] = [cell.source for cell in notebook.cells if cell.cell_type == "code" and cell.source.startswith(starting)]
    return source


@pytest.mark.parametrize("gpus, refused", [("Tesla P100-PCIE-16GB, 6.0", True), ("NVIDIA L4, 8.9\nNVIDIA L4, 8.9", False),
                                           ("Tesla T4, 7.5", False)])
def test_the_notebook_refuses_a_gpu_too_old_for_the_shipped_torch_before_installing(tmp_path, gpus, refused):
    """The GPU cell runs before the install cell, with a stand-in nvidia-smi that reports the GPUs."""
    import subprocess
    import sys

    notebook = nbformat.read(ROOT / "kaggle" / "arc-submit.ipynb", as_version=4)
    code = [cell.source.splitlines()[0] for cell in notebook.cells if cell.cell_type == "code"]
    assert code.index("# The accelerator, before anything is installed: torch 2.8's CUDA 12.8 build has no kernels below") \
        < next(i for i, line in enumerate(code) if line.startswith("# Install arc-submit"))
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\nprintf '{gpus}\\n'\n")
    fake.chmod(0o755)
    script = "import subprocess\n" + notebook_cell("# The accelerator, before anything is installed")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    output = (result.stdout + result.stderr).strip().splitlines()
    if refused:
        assert result.returncode == 1 and len(output) == 1
        assert "P100-PCIE-16GB (compute capability 6.0)" in output[0] and "GPU L4 x4" in output[0]
    else:
        assert result.returncode == 0 and output[0].startswith("GPUs: [[")


CHALLENGES = {"aaaa0001": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}, {"input": [[4]]}]}}


def first_cell(root, **env):
    """The notebook's first cell (paths and the fallback submission) on a simulated /kaggle tree."""
    return subprocess.run([sys.executable, "-c", notebook_cell("# Paths, and a valid submission")],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "ARC_SUBMIT_KAGGLE_ROOT": str(root), **env})


@pytest.mark.parametrize("where", ["competitions/arc-prize-2026-arc-agi-2", "arc-prize-2025", "some/deeper/copy"])
def test_the_notebook_finds_the_competition_wherever_kaggle_mounts_it(tmp_path, where):
    folder = tmp_path / "input" / where
    folder.mkdir(parents=True)
    (folder / "arc-agi_test_challenges.json").write_text(json.dumps(CHALLENGES))
    (tmp_path / "input" / "arc-submit-wheels").mkdir()
    result = first_cell(tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"1 tasks in {folder / 'arc-agi_test_challenges.json'}" in result.stdout
    submission = json.loads((tmp_path / "working" / "submission.json").read_text())
    assert submission == {"aaaa0001": [{"attempt_1": [[3]], "attempt_2": [[0]]}, {"attempt_1": [[4]], "attempt_2": [[0]]}]}
    # the same attempts as the library's fallback, both grids
    from arc_submit.data.submission import build, fallback_attempts
    from arc_submit.data.tasks import parse_challenges

    [task] = parse_challenges(CHALLENGES, "challenges.json")
    assert submission == build({task.task_id: fallback_attempts(task)})


def test_without_a_competition_the_notebook_says_in_one_line_what_is_attached(tmp_path):
    for folder in ("arc-submit-wheels", "my-model/weights", "competitions/some-other-competition"):
        (tmp_path / "input" / folder).mkdir(parents=True)
    result = first_cell(tmp_path)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in lines[0]
    assert "no arc-agi_test_challenges.json under" in lines[0]
    for folder in ("arc-submit-wheels", "my-model/weights", "competitions/some-other-competition"):
        assert folder in lines[0]


def test_arc_submit_competition_chooses_the_folder_and_a_wrong_one_is_one_line(tmp_path):
    for name in ("first", "second"):
        (tmp_path / "input" / name).mkdir(parents=True)
        (tmp_path / "input" / name / "arc-agi_test_challenges.json").write_text(json.dumps(CHALLENGES))
    chosen = first_cell(tmp_path, ARC_SUBMIT_COMPETITION=str(tmp_path / "input" / "second"))
    assert chosen.returncode == 0 and str(tmp_path / "input" / "second") in chosen.stdout
    both = first_cell(tmp_path)
    assert both.returncode == 0 and "2 test files" in both.stdout and str(tmp_path / "input" / "first") in both.stdout
    wrong = first_cell(tmp_path, ARC_SUBMIT_COMPETITION=str(tmp_path / "input"))
    lines = (wrong.stdout + wrong.stderr).strip().splitlines()
    assert wrong.returncode == 1 and len(lines) == 1 and "holds no arc-agi_test_challenges.json" in lines[0]


def first_two_cells(root, **env):
    """The notebook's first two cells on a simulated /kaggle tree: the competition, the fallback submission, the
    wheelhouse and the model."""
    script = notebook_cell("# Paths, and a valid submission") + "\n" + notebook_cell("# Find the attached wheelhouse")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "ARC_SUBMIT_KAGGLE_ROOT": str(root), **env})


def put(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("{}")


@pytest.mark.parametrize("model_at, adapter", [
    ("models/someone/nvarc-qwen3-4b/transformers/default/1", False),  # a Kaggle Model: six levels
    ("models/someone/nvarc-qwen3-4b/transformers/default/1/weights", False),  # its files a folder below
    ("datasets/ada/arc-submit-model", True),  # a model dataset holding an adapter and its base
    ("datasets/ada/arc-submit-model", False),
])
def test_the_notebook_finds_inputs_where_kaggle_mounts_them_in_2026(tmp_path, model_at, adapter):
    competition = tmp_path / "input" / "competitions" / "arc-prize-2026-arc-agi-2"
    competition.mkdir(parents=True)
    (competition / "arc-agi_test_challenges.json").write_text(json.dumps(CHALLENGES))
    put(tmp_path / "input" / "datasets" / "ada" / "arc-submit-wheels", "wheelhouse.json")
    put(tmp_path / "input" / "datasets" / "someone" / "re-arc", "config.json")  # a config.json but no weights
    model = tmp_path / "input" / model_at
    if adapter:
        put(model / "adapter", "adapter_config.json", "adapter_model.safetensors")
        put(model / "base", "config.json", "model.safetensors")
    else:
        put(model, "config.json", "model-00001-of-00002.safetensors")
    result = first_two_cells(tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wheelhouse: {tmp_path / 'input' / 'datasets' / 'ada' / 'arc-submit-wheels'}\n" in result.stdout
    assert f"model: {model / 'adapter' if adapter else model}" in result.stdout
    assert "re-arc" not in result.stdout


def test_without_a_model_the_notebook_says_what_to_attach_in_one_line(tmp_path):
    competition = tmp_path / "input" / "competitions" / "arc-prize-2026-arc-agi-2"
    competition.mkdir(parents=True)
    (competition / "arc-agi_test_challenges.json").write_text(json.dumps(CHALLENGES))
    put(tmp_path / "input" / "datasets" / "ada" / "arc-submit-wheels", "wheelhouse.json")
    result = first_two_cells(tmp_path)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert lines[-1].startswith("no model under") and "MODEL_SOURCES" in lines[-1]


def tiny_adapter(tiny_model_dir, folder, base: str) -> None:
    import torch  # noqa: F401 - the adapter is saved with torch
    from transformers import AutoModelForCausalLM

    from arc_submit.config import TTFTConfig
    from arc_submit.model.training import attach_adapter

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    attach_adapter(model, TTFTConfig(lora_rank=4, lora_alpha=8.0), seed=0).save_pretrained(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    (folder / "adapter_config.json").write_text(json.dumps(config))


def kaggle_model(*args):
    return subprocess.run([sys.executable, "kaggle/model.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_an_adapter_reaches_the_model_dataset_with_its_base_and_nothing_stale(tiny_model_dir, tmp_path):
    from arc_submit.model.resolve import resolve

    tiny_adapter(tiny_model_dir, tmp_path / "adapter", str(tiny_model_dir))
    out = tmp_path / "dataset"
    (out / "old-model").mkdir(parents=True)
    (out / "old-model" / "model.safetensors").write_text("stale")
    (out / "dataset-metadata.json").write_text('{"id": "me/arc-submit-model"}')
    result = kaggle_model(tmp_path / "adapter", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "base", "dataset-metadata.json"]
    resolved = resolve(str(out / "adapter"))  # offline, from the dataset alone
    assert resolved.adapter_dir == (out / "adapter").resolve() and resolved.base_dir == (out / "base").resolve()
    again = kaggle_model(tiny_model_dir, out)  # a plain model folder replaces it, as it is
    assert again.returncode == 0 and (out / "config.json").is_file() and not (out / "adapter").exists()


def test_an_adapter_of_a_hub_model_says_to_give_base(tiny_model_dir, tmp_path):
    tiny_adapter(tiny_model_dir, tmp_path / "adapter", "Qwen/Qwen3-4B")
    result = kaggle_model(tmp_path / "adapter", tmp_path / "dataset")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "'Qwen/Qwen3-4B' is not a folder on this machine" in lines[0]
    assert "BASE=/path/to/base" in lines[0] and "--set" not in lines[0]
    with_base = kaggle_model(tmp_path / "adapter", tmp_path / "dataset", "--base", tiny_model_dir)
    assert with_base.returncode == 0, with_base.stderr


def test_settings_travel_with_the_model_into_arc_submit_toml(tiny_model_dir, tmp_path):
    import tomllib

    from arc_submit.config import load_config

    tiny_adapter(tiny_model_dir, tmp_path / "adapter", str(tiny_model_dir))
    out = tmp_path / "dataset"
    result = kaggle_model(tmp_path / "adapter", out, "--config", "nvarc", "--set", "ttft.steps=64",
                          "--set", "model.name=/my/local/path")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "arc-submit.toml", "base"]
    carried = tomllib.loads((out / "arc-submit.toml").read_text())
    assert carried["prompt"]["format"] == "nvarc" and carried["ttft"]["steps"] == 64 and "model" not in carried
    assert "ttft.steps = 64" in result.stdout and "model.name left out" in result.stdout
    used = load_config(f"kaggle-l4x4+{out / 'arc-submit.toml'}")  # as the notebook lays it
    assert (used.prompt.format, used.ttft.steps, used.ttft.rslora) == ("nvarc", 64, True)
    assert used.sampling.max_batched_tokens == 1024 and used.ttft.gradient_checkpointing  # the GPU preset's stay
    # a setting that does not exist is refused in one line before anything is copied
    bad = kaggle_model(tmp_path / "adapter", tmp_path / "other", "--set", "ttft.stepz=64")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "unknown setting 'stepz'" in lines[0]
    assert 'SET="ttft.stepz=64"' in lines[0] and not (tmp_path / "other").exists()


def test_the_notebook_lays_the_models_settings_over_the_gpu_preset(tmp_path):
    """Cell 5 on its own: the preset from the GPUs, the model's arc-submit.toml beside the model or one folder
    up (an adapter's dataset), printed."""
    model = tmp_path / "input" / "arc-submit-model" / "adapter"
    model.mkdir(parents=True)
    (model.parent / "arc-submit.toml").write_text('# carried\n[ttft]\nsteps = 64\n')
    script = "\n".join([
        "import json, os, time", f"START = time.time(); MODEL = {str(model)!r}; found = [['NVIDIA L4', '8.9']]",
        "COMPETITION = '/nowhere'; challenges = {}; NOTEBOOK_SETTINGS = ''", notebook_cell("# Preset from the GPUs found"),
        "print('CONFIG=' + CONFIG)"])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert f"CONFIG=kaggle-l4x4+{model.parent / 'arc-submit.toml'}" in result.stdout
    assert "  steps = 64" in result.stdout and "# carried" not in result.stdout


def settings_cell(tmp_path, notebook_settings: str, model_settings: str):
    model = tmp_path / "input" / "models" / "someone" / "m" / "transformers" / "default" / "1"
    model.mkdir(parents=True)
    if model_settings:
        (model / "arc-submit.toml").write_text(model_settings)
    (tmp_path / "working").mkdir()
    script = "\n".join([
        "import json, os, time", f"START = time.time(); MODEL = {str(model)!r}; found = [['NVIDIA L4', '8.9']]",
        f"WORKING = {str(tmp_path / 'working')!r}; NOTEBOOK_SETTINGS = {notebook_settings!r}",
        "COMPETITION = '/nowhere'; challenges = {}", notebook_cell("# Preset from the GPUs found"),
        "print('CONFIG=' + CONFIG)"])
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})


def test_settings_carried_by_the_notebook_are_laid_over_the_preset_and_printed(tmp_path):
    result = settings_cell(tmp_path, "# carried\n[ttft]\nsteps = 64\n", "")
    assert result.returncode == 0, result.stderr
    written = tmp_path / "working" / "notebook-settings.toml"
    assert f"CONFIG=kaggle-l4x4+{written}" in result.stdout and written.read_text().endswith("steps = 64\n")
    assert "the notebook's settings, laid over preset kaggle-l4x4" in result.stdout and "  steps = 64" in result.stdout


def test_settings_from_both_the_notebook_and_the_model_are_refused_in_one_line_naming_both(tmp_path):
    result = settings_cell(tmp_path, "[ttft]\nsteps = 64\n", "[ttft]\nsteps = 8\n")
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in lines[0]
    assert lines[0].startswith("two sources of settings") and "arc-submit.toml" in lines[0] and "notebook" in lines[0]


def test_a_wheelhouse_without_a_pip_wheel_is_refused(tmp_path):
    wheel(tmp_path, "arc-submit", "0.1.0")
    command = [sys.executable, str(ROOT / "kaggle" / "wheelhouse.py"), str(tmp_path), "--extra", "gpu", "--python", "3.12"]
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and "0 pip wheels" in refused.stderr and "ensurepip" in refused.stderr
    wheel(tmp_path, "pip", "25.0")
    assert subprocess.run(command, capture_output=True).returncode == 0
    manifest = json.loads((tmp_path / "wheelhouse.json").read_text())
    assert manifest["pip"] == "pip-25.0-py3-none-any.whl" and manifest["python"] == "3.12"


def wheel(folder, name: str, version: str, *requires: str, extras: tuple[str, ...] = (),
          requires_python: str | None = None) -> None:
    """A wheel of NAME VERSION whose metadata requires REQUIRES (its code does not matter to a wheelhouse)."""
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {requirement}\n" for requirement in requires) + "".join(
        f"Provides-Extra: {extra}\n" for extra in extras) + (
        f"Requires-Python: {requires_python}\n" if requires_python else "")
    with zipfile.ZipFile(folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", metadata)
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/WHEEL",
                         "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")


def test_a_wheelhouse_missing_what_only_kaggles_python_needs_is_refused_and_says_what_to_download(tmp_path):
    """pip download evaluates markers for the Python it runs on, so a wheelhouse built on 3.11 for 3.12 lacks
    vLLM 0.11's setuptools<80 (asked for on Python > 3.11 only; triton's setuptools took the newest): the manifest
    step refuses it in one line, --unmet-to writes what to download, and with that wheel added it passes."""
    wheel(tmp_path, "arc-submit", "0.1.0", 'vllm==0.11.0; extra == "gpu"', 'fastapi[standard]; extra == "gpu"')
    wheel(tmp_path, "vllm", "0.11.0", 'setuptools<80,>=77.0.3; python_version > "3.11"', "triton==3.4.0",
          'typing-extensions; python_version < "3.12"')
    wheel(tmp_path, "triton", "3.4.0", "setuptools>=40.8.0")
    wheel(tmp_path, "setuptools", "84.2.1")
    wheel(tmp_path, "fastapi", "0.165.0", 'uvicorn; extra == "standard"', 'email-validator; extra == "all"')
    wheel(tmp_path, "uvicorn", "0.40.0")
    wheel(tmp_path, "pip", "26.3")
    command = [sys.executable, str(ROOT / "kaggle" / "wheelhouse.py"), str(tmp_path), "--extra", "gpu", "--python"]
    assert subprocess.run(command + ["3.11"], capture_output=True, text=True).returncode == 1  # typing-extensions
    wheel(tmp_path, "typing-extensions", "4.15.0")
    assert subprocess.run(command + ["3.11"], capture_output=True, text=True).returncode == 0
    refused = subprocess.run(command + ["3.12"], capture_output=True, text=True)
    [line] = refused.stderr.splitlines()
    assert refused.returncode == 1 and line.startswith(f"{tmp_path}: would not install on Python 3.12: 1 requirement")
    assert "setuptools<80,>=77.0.3 (needed by vllm 0.11.0; here: 84.2.1)" in line
    unmet = tmp_path / "unmet.txt"
    assert subprocess.run(command + ["3.12", "--unmet-to", str(unmet)]).returncode == 0
    assert unmet.read_text() == "setuptools<80,>=77.0.3\n"
    wheel(tmp_path, "setuptools", "79.0.1")
    assert subprocess.run(command + ["3.12", "--unmet-to", str(unmet)]).returncode == 0 and unmet.read_text() == ""
    assert subprocess.run(command + ["3.12"]).returncode == 0
    (tmp_path / "uvicorn-0.40.0-py3-none-any.whl").unlink()  # an extra's requirement counts too
    refused = subprocess.run(command + ["3.12"], capture_output=True, text=True)
    assert refused.returncode == 1 and "uvicorn (needed by fastapi 0.165.0; here: none)" in refused.stderr


def test_the_wheelhouses_python_defaults_to_kaggles():
    assert re.search(r"^KAGGLE_PYTHON \?= 3\.12$", (ROOT / "Makefile").read_text(), re.M)


def test_a_failed_install_command_stops_the_notebook_with_its_error_in_one_line(tmp_path):
    """The install cell's run(): a subprocess's own output would reach only the kernel's log, which Kaggle does not
    show, so the command's output goes to the cell and its failure to one line that carries its last line."""
    cell = ast.parse(notebook_cell("# Install arc-submit"))
    [function] = [node for node in cell.body if isinstance(node, ast.FunctionDef) and node.name == "run"]
    script = "\n".join(["import os, shutil, subprocess", f"ENV = dict(os.environ); VENV = {str(tmp_path / 'venv')!r}",
                        ast.unparse(function),
                        "run(['sh', '-c', 'echo Looking in links: wheels'])",
                        "run(['sh', '-c', 'echo a warning; echo ERROR: No matching distribution found for x >&2; "
                        "exit 1'])"])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["$ sh -c echo Looking in links: wheels", "Looking in links: wheels",
                                          "$ sh -c echo a warning; echo ERROR: No matching distribution found for x "
                                          ">&2; exit 1", "a warning", "ERROR: No matching distribution found for x"]
    [line] = result.stderr.splitlines()
    assert line.startswith("sh -c echo a warning; echo ERROR: No matching distribution found for x >&2; exit 1 ... "
                           "failed (exit 1): ERROR: No matching distribution found for x (")
    assert f"GiB free beside {tmp_path / 'venv'})" in line


def inflate(path, member_size: int) -> None:
    """Rewrites the zip at PATH so that its central directory says each member unpacks to MEMBER_SIZE bytes (under
    4 GiB, no zip64), as a wheelhouse bigger than the disk would say, without writing that much."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start != -1:
        data[start + 24:start + 28] = member_size.to_bytes(4, "little")
        start = data.find(b"PK\x01\x02", start + 4)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("members", [1, 200])
def test_the_notebook_stops_before_installing_a_wheelhouse_the_disk_cannot_hold(tmp_path, members):
    """check_room(): pip that runs out of disk fails after minutes in some package's middle (CI's make kaggle-sim
    once did), so the install cell first weighs the wheelhouse unpacked against the free disk beside VENV, and
    stops in one line that names both. 200 members said to unpack to 2 GiB each are more than any disk here."""
    cell = ast.parse(notebook_cell("# Install arc-submit"))
    [function] = [node for node in cell.body if isinstance(node, ast.FunctionDef) and node.name == "check_room"]
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    wheels.mkdir()
    venv.mkdir()
    archive = wheels / "big-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as opened:
        for number in range(members):
            opened.writestr(f"big/part{number}.bin", b"0")
    inflate(archive, 2**31)
    assert sum(member.file_size for member in zipfile.ZipFile(archive).infolist()) == members * 2**31
    script = "\n".join(["import os, shutil, zipfile", f"WHEELS, VENV = {str(wheels)!r}, {str(venv)!r}",
                        ast.unparse(function), "check_room()", "print('room')"])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if members == 1:  # 2.1 GiB: room on any machine that runs these tests
        assert (result.returncode, result.stdout, result.stderr) == (0, "room\n", "")
        return
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert re.fullmatch(rf"installing the wheelhouse needs about 420\.0 GiB beside {re.escape(str(venv))}, and "
                        r"[0-9.]+ GiB is free there: free disk, or set ARC_SUBMIT_VENV to a folder on a larger disk",
                        line), line


def test_a_wheelhouse_that_pip_on_the_target_python_cannot_install_is_refused_with_pips_reason(tmp_path):
    """--resolve-with: pip on a Python of the target version resolves the notebook's install offline from the
    folder, run from the folder's own pip wheel as the notebook runs it. A wheel whose Requires-Python excludes that
    Python passes the marker check but not pip: refused in one line with pip's last line; with a wheel that fits
    the same folder resolves. This Python and its bundled pip wheel stand in for Kaggle's."""
    import ensurepip

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    [pip_wheel] = (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl")
    (tmp_path / pip_wheel.name).write_bytes(pip_wheel.read_bytes())
    wheel(tmp_path, "arc-submit", "0.1.0", 'tiny-dep>=1; extra == "gpu"', extras=("gpu",))
    wheel(tmp_path, "tiny-dep", "1.0", requires_python=">=4")
    command = [sys.executable, str(ROOT / "kaggle" / "wheelhouse.py"), str(tmp_path), "--extra", "gpu", "--python",
               python, "--resolve-with", sys.executable]
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and not (tmp_path / "wheelhouse.json").exists()
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"{tmp_path}: pip on Python {python} ({sys.executable}) would not install it: ERROR: ")
    assert "tiny-dep" in line
    (tmp_path / "tiny_dep-1.0-py3-none-any.whl").unlink()
    wheel(tmp_path, "tiny-dep", "1.0", requires_python=f">={python}")
    resolved = subprocess.run(command, capture_output=True, text=True)
    assert resolved.returncode == 0, resolved.stderr
    assert f"pip on Python {python} resolves arc-submit[gpu] from it offline" in resolved.stdout
    assert json.loads((tmp_path / "wheelhouse.json").read_text())["pip"] == pip_wheel.name
    wrong = subprocess.run([*command[:-1], str(ROOT / "no-such-python")], capture_output=True, text=True)
    assert wrong.returncode == 1 and "not a Python" in wrong.stderr
