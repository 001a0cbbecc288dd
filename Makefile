# mlgate developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORE   := $(VENV)/.core-installed
FULL   := $(VENV)/.test-installed

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(CORE): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[hub,hf,sandbox]'
	touch $@

$(FULL): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $@ $(CORE)

# The main job on bundled samples (nothing in them is ever executed): scan, quarantine,
# auto-reject, review, publish, admission gate, audit, and the hub serving the real Hugging
# Face client (huggingface_hub: the hf extra); see samples/demo.sh.
demo: $(CORE)
	$(PY) samples/generate.py build/samples
	PY=$(PY) bash samples/demo.sh build/samples

test: $(FULL)
	$(PY) -m pytest -n 2 -q --durations=15

lint: $(FULL)
	$(VENV)/bin/ruff check src tests bench samples
	$(VENV)/bin/ruff format --check src
	$(VENV)/bin/mypy

bench: $(FULL)
	command -v wrk >/dev/null && test -x /usr/sbin/nginx || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light; }
	$(PY) bench/run.py
	$(PY) bench/corpus.py
	$(PY) bench/hashing.py
	$(PY) bench/convert.py
	$(PY) bench/hub.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
