#!/usr/bin/env bash
# Idempotent installer: builds a repo-local venv (.venv) with the OpenMMLab stack and
# gpunet_mm in editable mode. Safe to run again; every step is skipped once done.
#
#   STACK=upstream (default)  mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0, mmpretrain 1.2.0
#   STACK=onedl               the maintained fork (onedl-mmengine/-mmcv/-mmdetection/-mmpretrain)
#
# mmcv has no wheel for this torch, so its CPU ops compile once (~10 min on 2 cores);
# pip caches the built wheel, so later venvs on the same machine install in about a minute.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
STACK="${STACK:-upstream}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.gpunet_mm-installed-$STACK-v5"

if [[ -f "$STAMP" ]]; then
  exit 0
fi
case "$STACK" in upstream|onedl) ;; *) echo "STACK must be 'upstream' or 'onedl', got '$STACK'" >&2; exit 2;; esac

log() { echo "[install_env] $*" >&2; }
[[ -x "$VENV/bin/python" ]] || { log "creating venv at $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip)
pipq() { "${PIP[@]}" install --progress-bar off "$@"; }

has() { "$VENV/bin/python" -c "import $1" >/dev/null 2>&1; }

# 1. torch + torchvision. The local CPU torch has no matching torchvision; the registry's
#    CUDA builds of both run fine without a GPU (see docs/install.md).
if ! "$VENV/bin/python" -c "import torch, torchvision.ops; torchvision.ops.nms" >/dev/null 2>&1; then
  log "installing torch 2.13.0 + torchvision 0.28.0"
  "${PIP[@]}" --isolated install --progress-bar off torch==2.13.0 torchvision==0.28.0
fi
# 2. build tooling for mmcv (setup.py needs pkg_resources -> setuptools < 81)
pipq "setuptools>=77.0.3,<81" wheel ninja
pipq numpy scipy onnx onnxruntime pytest pytest-timeout ruff matplotlib scikit-learn \
     pycocotools shapely six terminaltables tqdm einops importlib-metadata mat4py modelindex \
     rich pyyaml onnxconverter-common optuna threadpoolctl
# the distributed search runs its trainings on Ray (a local Ray in-process by default)
pipq "ray[default]"
pipq "pydantic>=2"  # the schema layer (gpunet_mm/schema.py); Ray brings it too
# the docs site (built and link-checked by the tests) and property-based tests
pipq sphinx myst-parser furo hypothesis
# DEHB: a multi-fidelity peer in benchmarks/benchmark_multifidelity.py (only that benchmark
# imports it). Its metadata pins numpy < 2, which would downgrade the stack's numpy 2.x: it
# is installed without its dependencies, which are listed here (it runs on numpy 2.4)
pipq --no-deps dehb==0.1.2
pipq loguru dask distributed ConfigSpace pandas pyarrow

if [[ "$STACK" == upstream ]]; then
  pipq mmengine==0.10.7
  if ! has mmcv.ops; then
    log "compiling mmcv 2.1.0 CPU ops (one time, ~10 min on 2 cores; cached by pip afterwards)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" install --progress-bar off --no-build-isolation mmcv==2.1.0
  fi
  pipq --no-build-isolation mmdet==3.3.0 mmpretrain==1.2.0
else
  pipq onedl-mmengine
  if ! has mmcv.ops; then
    log "compiling onedl-mmcv CPU ops (one time, ~11 min on 2 cores; cached by pip afterwards)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" install --progress-bar off --no-build-isolation onedl-mmcv
  fi
  pipq --no-build-isolation onedl-mmdetection onedl-mmpretrain
fi

pipq --no-build-isolation --no-deps -e "$ROOT"
"$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmpretrain.models, gpunet_mm" 
touch "$STAMP"
log "done: $VENV ($STACK stack)"
