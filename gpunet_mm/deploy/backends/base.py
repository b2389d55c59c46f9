"""One interface for latency measurement on every backend.

A backend turns "this model, this input shape, this precision" into a :class:`LatencyResult`
with median / p90 / mean milliseconds and the environment the numbers were taken in (device,
backend and driver versions), because a latency without its environment is not comparable.
"""

from __future__ import annotations

import os
import platform
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np


class BackendUnavailableError(RuntimeError):
    """The backend's runtime is not installed (the message says how to install it)."""


@dataclass
class LatencyResult:
    """Summary of per-iteration times in milliseconds, plus where they were taken."""

    backend: str
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    std_ms: float
    iters: int
    warmup: int
    precision: str
    batch: int
    shape: Tuple[int, int]
    env: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_times(
        cls,
        times_ms: Sequence[float],
        *,
        backend: str,
        warmup: int,
        precision: str,
        batch: int,
        shape: Tuple[int, int],
        env: Dict[str, Any],
    ) -> LatencyResult:
        if not times_ms:
            raise ValueError('no timed iterations: iters must be >= 1')
        t = np.asarray(times_ms, dtype=np.float64)
        return cls(
            backend=backend,
            median_ms=float(np.median(t)),
            p90_ms=float(np.percentile(t, 90)),
            mean_ms=float(t.mean()),
            min_ms=float(t.min()),
            std_ms=float(t.std()),
            iters=len(t),
            warmup=warmup,
            precision=precision,
            batch=batch,
            shape=(int(shape[0]), int(shape[1])),
            env=dict(env),
        )

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d['shape'] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> LatencyResult:
        d = dict(d)
        d['shape'] = tuple(d['shape'])
        return cls(**d)


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), for the environment record."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    """The first CUDA device's name, for the environment record and the device key of the
    backends that run on a GPU without torch timing them (ONNX Runtime, TensorRT);
    ``'unknown-gpu'`` where torch cannot tell."""
    try:
        import torch

        return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a label only
        return 'unknown-gpu'


def host_env() -> Dict[str, Any]:
    return dict(
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        platform=platform.platform(terse=True),
    )


def time_calls_ms(
    run: Callable[[], Any], *, iters: int, warmup: int, cuda: bool = False, stream: Any = None
) -> List[float]:
    """Call ``run`` ``warmup`` times, then time each of ``iters`` calls in milliseconds.

    On CPU (``cuda=False``) the wall clock brackets each call. With ``cuda=True`` CUDA
    events recorded on ``stream`` (the stream ``run`` enqueues on; None: the current one)
    bracket it, which is device time like trtexec's GPU compute time, not launch time.
    """
    for _ in range(max(warmup, 0)):
        run()
    times: List[float] = []
    if not cuda:
        for _ in range(iters):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
        return times
    import torch

    (stream or torch.cuda).synchronize()  # the warm-up's work must not land in the first timing
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        run()
        end.record(stream)
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


#: how a backend times one run: the wall clock, or the process CPU time (see
#: :func:`check_cpu_clock`)
CLOCKS = ('wall', 'cpu')


def check_cpu_clock(backend: str, device: str, threads: Optional[int]) -> None:
    """Refuse a ``clock='cpu'`` measurement whose CPU time is not its latency.

    On a shared CPU, wall time measures the neighbours as much as the network; the process
    CPU time of a ``session.run`` does not, and it is the wall latency when one thread does
    all the work: ONNX Runtime on the CPU with one intra-op thread. With two threads the
    process CPU time adds both threads' time (GPUNet-0 read 42.1 ms at a wall latency of
    21.6 ms), so a budget in ms would be off by the thread count; a GPU or TensorRT
    target spends its time off the CPU, and the torch backend times with the wall clock.
    """
    if device != 'cpu' or backend != 'onnxruntime':
        raise ValueError(
            f"latency target clock 'cpu' times CPU work of ONNX Runtime on the CPU only; got "
            f"backend {backend!r} on {device!r}: use clock='wall' there"
        )
    if threads != 1:
        shown = 'None (all cores)' if threads is None else repr(threads)
        raise ValueError(
            f"latency target clock 'cpu' needs threads=1: with threads={shown} the process "
            "CPU time adds up every thread's time and is not the wall latency; use threads=1 "
            "with clock='cpu', or clock='wall' for more threads"
        )


class LatencyBackend(ABC):
    """A way to time a model. Subclasses set ``name`` and ``install_hint``."""

    name: str = ''
    install_hint: str = ''

    @classmethod
    @abstractmethod
    def available(cls) -> bool:
        """True when the runtime imports (no GPU check: that is the device's business)."""

    @abstractmethod
    def environment(self) -> Dict[str, Any]:
        """Device name, backend/driver versions: goes into every result and the cache key."""

    @abstractmethod
    def measure(self, model: Any, **kwargs: Any) -> LatencyResult:
        """Time ``model`` (an ONNX path for onnxruntime/tensorrt, a module for torch)."""

    def result(
        self,
        times_ms: Sequence[float],
        *,
        warmup: int,
        precision: str,
        batch: int,
        shape: Tuple[int, int],
        env: Optional[Dict[str, Any]] = None,
    ) -> LatencyResult:
        """The :class:`LatencyResult` of ``times_ms``, named and placed by the environment.

        ``env`` defaults to :meth:`environment`; its ``backend`` entry (e.g.
        ``'torch-compile'``) names the result, so the two always agree.
        """
        env = self.environment() if env is None else env
        return LatencyResult.from_times(
            times_ms,
            backend=env['backend'],
            warmup=warmup,
            precision=precision,
            batch=batch,
            shape=shape,
            env=env,
        )

    def device_key(self) -> str:
        """Short device identity for the cache key (e.g. ``'cpu:Intel Xeon...:4t'``)."""
        env = self.environment()
        return str(env.get('device', 'unknown'))
