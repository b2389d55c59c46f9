# The two commands a newcomer needs (see README): `make demo` and `make test`.
# Both install into a repo-local venv (.venv) first; the install is skipped once done.
PY := .venv/bin/python
STACK ?= upstream

.PHONY: install demo test test-all lint format clean-demo

install:
	@STACK=$(STACK) bash tools/install_env.sh

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -m "not slow" -q

test-all: install
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .

clean-demo:
	rm -rf work_dirs/demo
