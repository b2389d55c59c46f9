# The two commands a newcomer needs (see README): `make demo` and `make test`.
# Both install into a repo-local venv (.venv) first; the install is skipped once done.
PY := .venv/bin/python
STACK ?= upstream

.PHONY: install demo demo-train test test-all lint format clean-demo
NAS_DEMO_DIR ?= work_dirs/nas_demo

install:
	@STACK=$(STACK) bash tools/install_env.sh

# the main job: the latency-constrained search on the demo data (resumes if interrupted)
demo: install
	$(PY) tools/misc/make_demo_data.py --skip-cls
	$(PY) tools/nas_search.py configs/nas/retinanet_gpunet-nas_fpn_demo_ort-cpu.py \
	    --work-dir $(NAS_DEMO_DIR) $$(test -f $(NAS_DEMO_DIR)/journal.sqlite && echo --resume)

# train / interrupt / resume / evaluate RetinaNet+GPUNet-0 on the demo data
demo-train: install
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
	rm -rf work_dirs/demo $(NAS_DEMO_DIR)
