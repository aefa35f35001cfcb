"""The Kaggle files parse and hold what Kaggle's tools require. (`make kaggle-sim` runs the notebook.)"""

from __future__ import annotations

import ast
import json

import nbformat
import pytest

from tests.conftest import ROOT

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
    metadata = json.loads((ROOT / "kaggle" / "kernel-metadata.json").read_text())
    assert KERNEL_FIELDS <= set(metadata)
    assert (ROOT / "kaggle" / metadata["code_file"]).is_file()
    assert metadata["language"] == "python" and metadata["kernel_type"] == "notebook"
    assert metadata["enable_gpu"] is True and metadata["enable_internet"] is False and metadata["is_private"] is True
    assert metadata["competition_sources"] == ["arc-prize-2025"]
    slugs = {json.loads(path.read_text())["id"] for path in (ROOT / "datasets-meta").glob("*/dataset-metadata.json")}
    assert set(metadata["dataset_sources"]) == slugs


@pytest.mark.parametrize("name", ["arc-submit-wheels", "arc-submit-model"])
def test_dataset_metadata_has_title_id_and_licence(name):
    metadata = json.loads((ROOT / "datasets-meta" / name / "dataset-metadata.json").read_text())
    assert 6 <= len(metadata["title"]) <= 50
    owner, slug = metadata["id"].split("/")
    assert owner and 3 <= len(slug) <= 50 and slug == name
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
