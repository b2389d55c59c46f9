"""ONNX Runtime against PyTorch ``predict`` on one detector, timed side by side.

The benchmarks that report the end-to-end speed-up (``benchmarks/benchmark_deploy.py``,
``benchmarks/benchmark_detectors.py``) time it one way, kept here: alternating rounds in
one process (an ONNX Runtime round, then a PyTorch round, ``rounds`` times), each round the
median of ``iters`` runs, so that a change of load on a shared machine hits both alike and
the ratio of the medians survives it.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, Optional, Tuple

import torch

from .onnxruntime import OnnxRuntimeBackend
from .torch import DetectorPredict, TorchBackend


def time_ort_vs_torch(
    model: torch.nn.Module,
    onnx_path: str,
    raw: torch.Tensor,
    shape: Tuple[int, int],
    ort: OnnxRuntimeBackend,
    eager: TorchBackend,
    rounds: int,
    iters: int,
    warmup: int = 2,
    session: Optional[Any] = None,
) -> Dict[str, Any]:
    """The end-to-end graph at ``onnx_path`` in ONNX Runtime against ``model``'s
    ``data_preprocessor`` + ``predict`` in PyTorch eager, on the same input batch ``raw``.

    Returns the medians over rounds (``ort_median_ms``, ``torch_predict_median_ms``), the
    per-round medians (``*_rounds_ms``) and ``speedup_ort_vs_torch`` (PyTorch / ORT).
    """
    sess = session or ort.session(onnx_path)
    pred = DetectorPredict(model)
    feed = {'input': raw.numpy()}
    ort_t, torch_t = [], []
    for _ in range(rounds):
        r = ort.measure(
            onnx_path, shape=shape, iters=iters, warmup=warmup, session=sess, inputs=feed
        )
        ort_t.append(r.median_ms)
        r = eager.measure(pred, shape=shape, iters=iters, warmup=warmup, inputs=raw)
        torch_t.append(r.median_ms)
    ort_ms, torch_ms = statistics.median(ort_t), statistics.median(torch_t)
    return dict(
        ort_median_ms=ort_ms,
        torch_predict_median_ms=torch_ms,
        ort_rounds_ms=[round(t, 2) for t in ort_t],
        torch_rounds_ms=[round(t, 2) for t in torch_t],
        speedup_ort_vs_torch=torch_ms / ort_ms,
    )


def side_by_side_record(
    ort: OnnxRuntimeBackend, rows: list, rounds: int, iters: int, threads: Optional[int]
) -> Dict[str, Any]:
    """A side-by-side benchmark's result file: its rows and how they were timed (the ORT
    environment, threads, rounds, runs per round, the torch and numpy versions)."""
    import numpy as np

    return dict(
        rows=rows,
        env=ort.environment(),
        threads=threads,
        rounds=rounds,
        iters_per_round=iters,
        torch=torch.__version__,
        numpy=np.__version__,
    )
