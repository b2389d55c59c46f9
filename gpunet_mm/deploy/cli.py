"""The logic behind tools/deploy.py and tools/benchmark_latency.py (kept importable)."""

from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from .backends import get_backend
from .backends.base import BackendUnavailableError
from .backends.tensorrt import plan_for_onnx, trt_version
from .cache import LatencyCache
from .config import DeployConfig


class VerificationError(ValueError):
    """The exported graph's outputs differ from PyTorch's beyond the tolerance."""


#: default gate of the ORT-vs-PyTorch check: fp32 exports agree to ~1e-5 px and every label
VERIFY_ATOL_PX = 0.5
VERIFY_MIN_LABELS_EQUAL = 0.99


def deploy(
    config: str,
    checkpoint: Optional[str],
    deploy_cfg: DeployConfig,
    work_dir: str,
    verify: bool = True,
    cfg_options: Optional[Dict[str, Any]] = None,
    verify_atol: float = VERIFY_ATOL_PX,
    verify_min_labels_equal: float = VERIFY_MIN_LABELS_EQUAL,
) -> Dict[str, Any]:
    """Export ``config`` end to end into ``work_dir``; for TensorRT also plan/build the engine.

    Writes ``end2end.onnx`` (+ ``end2end.engine`` when TensorRT is installed) and
    ``deploy_summary.json``; returns the summary. The ONNX Runtime check is a gate: boxes
    further than ``verify_atol`` px from PyTorch's, or fewer than ``verify_min_labels_equal``
    equal labels, raise :class:`VerificationError` (after the summary is written).
    """
    import torch

    from .export import build_detector, export_onnx, make_wrapper

    os.makedirs(work_dir, exist_ok=True)
    torch.manual_seed(0)
    model = build_detector(config, checkpoint, cfg_options)
    onnx_path = osp.join(work_dir, 'end2end.onnx')
    summary = export_onnx(model, deploy_cfg, onnx_path)
    summary.update(config=osp.abspath(config), checkpoint=checkpoint)
    failed = None
    if verify and deploy_cfg.backend == 'onnxruntime':
        check = _verify_ort(model, deploy_cfg, onnx_path, make_wrapper)
        check.update(atol_px=verify_atol, min_labels_equal=verify_min_labels_equal)
        check['passed'] = (
            check['max_abs_diff'] <= verify_atol
            and check['labels_equal'] >= verify_min_labels_equal
        )
        summary['verify'] = check
        if not check['passed']:
            hint = (
                ' fp16 graphs are for GPU backends (TensorRT, onnxruntime-gpu); on CPU export '
                'fp32, or skip this check with --no-verify.'
                if deploy_cfg.precision == 'fp16'
                else ''
            )
            failed = (
                f'verification failed: ONNX Runtime vs PyTorch on {onnx_path}: max box '
                f'difference {check["max_abs_diff"]:.4g} px (allowed {verify_atol}), labels '
                f'equal {check["labels_equal"]:.1%} (needed {verify_min_labels_equal:.0%}), '
                f'{check["num_dets"]} detections.{hint}'
            )
    if deploy_cfg.backend == 'tensorrt':
        summary['tensorrt'] = _tensorrt_step(onnx_path, deploy_cfg, work_dir)
    with open(osp.join(work_dir, 'deploy_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2, default=str)
    if failed:
        raise VerificationError(failed)
    return summary


def _verify_ort(model, deploy_cfg: DeployConfig, onnx_path: str, make_wrapper) -> Dict[str, Any]:
    """ORT output vs the PyTorch wrapper on one random input (max abs diff of dets)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    wrapper = make_wrapper(
        model.float(), DeployConfig.from_any({**deploy_cfg.to_dict(), 'precision': 'fp32'})
    )
    h, w = deploy_cfg.input_shape
    x = torch.rand(deploy_cfg.batch_size, 3, h, w) * 255
    with torch.no_grad():
        ref_d, ref_l = wrapper(x)[:2]  # (masks, when exported, come third)
    sess = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    dets, labels = sess.run(['dets', 'labels'], {'input': x.numpy()})
    return dict(
        max_abs_diff=float(np.abs(dets - ref_d.numpy()).max()),
        labels_equal=float((labels == ref_l.numpy()).mean()),
        num_dets=int((labels >= 0).sum()),
    )


def _tensorrt_step(onnx_path: str, deploy_cfg: DeployConfig, work_dir: str) -> Dict[str, Any]:
    version = trt_version()
    if version is None:
        # dry run: what the build would do on each supported TensorRT major
        plans = {}
        for v in ('10.13.0', '11.4.0'):
            try:
                plans[v] = plan_for_onnx(onnx_path, deploy_cfg.precision, v).to_dict()
            except ValueError as e:
                plans[v] = dict(error=str(e))
        return dict(
            installed=None,
            message='TensorRT is not installed here: wrote the ONNX and the build plans; '
            'build on the target with pip install "gpunet_mm[trt]" and tools/deploy.py',
            plans=plans,
        )
    from .backends.tensorrt import build_engine

    plan = plan_for_onnx(onnx_path, deploy_cfg.precision, version)
    engine = build_engine(onnx_path, plan, osp.join(work_dir, 'trt_cache'))
    path = osp.join(work_dir, 'end2end.engine')
    with open(path, 'wb') as f:
        f.write(engine)
    return dict(installed=version, engine=path, plan=plan.to_dict())


# --------------------------------------------------------------------------- benchmarking
def benchmark_configs(
    configs: Sequence[str],
    backend: str,
    shape: Sequence[int],
    *,
    iters: int = 50,
    warmup: int = 10,
    batch: int = 1,
    precision: str = 'fp32',
    device: str = 'cpu',
    threads: Optional[int] = None,
    torch_mode: str = 'eager',
    score_fraction: float = 0.0,
    clock: str = 'wall',
    work_dir: str = 'work_dirs/benchmark_latency',
    cache: Optional[str] = None,
    progress: bool = True,
) -> List[Dict[str, Any]]:
    """Latency of each config on one target, through the latency service; one row each.

    Every config goes through :func:`~gpunet_mm.deploy.latency.measure_config`, so its
    cache key is the one the search and the hub benchmark use: a config timed here is found
    cached by them (and the other way round) when the target agrees. ``score_fraction=0``
    keeps the random head's score prior (NMS sees few boxes); the search's targets seed
    ``0.002``. A config that fails (cannot be built, exported or timed) gives a row with
    ``error`` (its exception) and the others are still measured: rows already measured are
    never lost to a later config's failure.
    """
    from tqdm import tqdm

    from .latency import LatencyTarget, measure_config

    target = LatencyTarget(
        backend=backend,
        device=device,
        precision=precision,
        batch=batch,
        threads=threads,
        iters=iters,
        warmup=warmup,
        shape=(int(shape[0]), int(shape[1])),
        score_fraction=score_fraction,
        clock=clock,
    )
    if backend == 'torch':
        lat_backend = get_backend('torch', device=device, mode=torch_mode, threads=threads)
    else:
        lat_backend = target.make_backend()
    store = LatencyCache(cache) if cache else None
    rows = []
    for config in tqdm(configs, desc=f'latency ({backend})', disable=not progress):
        name = osp.splitext(osp.basename(config))[0]
        try:
            res, hit = measure_config(
                config, target, store, osp.join(work_dir, name), backend=lat_backend
            )
        except Exception as e:  # noqa: BLE001 - one config's failure is that config's row
            rows.append(dict(config=name, path=config, error=f'{type(e).__name__}: {e}'))
            continue
        rows.append(dict(config=name, cached=hit, **res.to_dict()))
    return rows


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    head = (
        f'{"model":40s} {"backend":14s} {"prec":5s} {"batch":>5s} {"shape":>9s} '
        f'{"median":>9s} {"p90":>9s} {"mean":>9s} {"cached":>6s}'
    )
    lines = [head, '-' * len(head)]
    for r in rows:
        if r.get('error'):
            lines.append(f'{r["config"][:40]:40s} FAILED: {r["error"][:200]}')
            continue
        lines.append(
            f'{r["config"][:40]:40s} {r["backend"]:14s} {r["precision"]:5s} {r["batch"]:5d} '
            f'{r["shape"][0]:>4d}x{r["shape"][1]:<4d} {r["median_ms"]:7.2f}ms '
            f'{r["p90_ms"]:7.2f}ms {r["mean_ms"]:7.2f}ms {"yes" if r["cached"] else "no":>6s}'
        )
    return '\n'.join(lines)


__all__ = [
    'BackendUnavailableError',
    'VerificationError',
    'benchmark_configs',
    'deploy',
    'format_table',
]
