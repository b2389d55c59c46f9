"""ONNX Runtime latency: CPU or CUDA execution provider, pinned threads, warm-up.

The default backend, and the one every test here runs. ``intra_op_num_threads`` is pinned
(default: all cores) and ``inter_op_num_threads=1`` with sequential execution, so two runs on
one machine compare; the thread count is part of the environment and the cache key.

``clock='cpu'`` times each ``session.run`` with the process CPU time instead of the wall
clock: with one intra-op thread ONNX Runtime runs every kernel on the calling thread, so on
an idle machine CPU time equals wall time, and under load it stays within a few percent
while wall time grows by half (see docs/deploy.md). Other thread counts are refused
(``gpunet_mm.deploy.backends.base.check_cpu_clock``).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .base import (
    CLOCKS,
    BackendUnavailableError,
    LatencyBackend,
    LatencyResult,
    check_cpu_clock,
    gpu_name,
    host_env,
    time_calls_ms,
)
from .registry import LATENCY_BACKENDS

DEVICES = ('cpu', 'cuda')


@LATENCY_BACKENDS.register_module(name='onnxruntime')
class OnnxRuntimeBackend(LatencyBackend):
    name = 'onnxruntime'
    install_hint = 'pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA execution provider)'

    def __init__(
        self, device: str = 'cpu', threads: Optional[int] = None, clock: str = 'wall'
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f'onnxruntime device: got {device!r}; allowed: {", ".join(DEVICES)}')
        if clock not in CLOCKS:
            raise ValueError(f'onnxruntime clock: got {clock!r}; allowed: {", ".join(CLOCKS)}')
        if clock == 'cpu':
            check_cpu_clock(self.name, device, threads)
        if not self.available():
            raise BackendUnavailableError(f'onnxruntime is not installed: {self.install_hint}')
        import onnxruntime as ort

        if device == 'cuda' and 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise BackendUnavailableError(
                'onnxruntime has no CUDAExecutionProvider here (providers: '
                f'{ort.get_available_providers()}); pip install onnxruntime-gpu on a CUDA host'
            )
        self.device = device
        self.threads = int(threads or os.cpu_count() or 1)
        self.clock = clock

    @classmethod
    def available(cls) -> bool:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    def providers(self) -> Sequence[str]:
        if self.device == 'cuda':
            return ['CUDAExecutionProvider', 'CPUExecutionProvider']
        return ['CPUExecutionProvider']

    def session(self, onnx_path: str):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return ort.InferenceSession(onnx_path, sess_options=so, providers=list(self.providers()))

    def environment(self) -> Dict[str, Any]:
        import onnxruntime as ort

        env = host_env()
        dev = env['cpu'] if self.device == 'cpu' else gpu_name()
        env.update(
            backend='onnxruntime',
            onnxruntime=ort.__version__,
            providers=list(self.providers()),
            threads=self.threads,
            device=f'{self.device}:{dev}:{self.threads}t',
        )
        return env

    def measure(
        self,
        model: str,
        *,
        shape: Tuple[int, int] = (320, 320),
        batch: int = 1,
        iters: int = 50,
        warmup: int = 10,
        precision: str = 'fp32',
        inputs: Optional[Dict[str, np.ndarray]] = None,
        session: Any = None,
    ) -> LatencyResult:
        """Times of ``session.run`` on one fixed input (ONNX path ``model``), on this
        backend's clock; ``env['clock']`` says which (``'wall'``, or ``'process_cpu'`` with
        the wall median of the same runs as ``env['wall_median_ms']``).

        On CUDA the inputs are bound on the device once (IO binding) so host-device copies
        of the input stay out of the timing, as with trtexec.
        """
        sess = session or self.session(model)
        if inputs is None:
            inputs = {}
            rng = np.random.default_rng(0)
            for i in sess.get_inputs():
                dims = [d if isinstance(d, int) else None for d in i.shape]
                full = [batch, 3, shape[0], shape[1]]
                dims = [full[k] if d is None else d for k, d in enumerate(dims)]
                dtype = np.float16 if 'float16' in i.type else np.float32
                inputs[i.name] = (rng.random(dims) * 255).astype(dtype)
        run = self._runner(sess, inputs)
        if self.clock == 'wall':
            times = time_calls_ms(run, iters=iters, warmup=warmup)
            env = dict(self.environment(), clock='wall')
            return self.result(
                times, warmup=warmup, precision=precision, batch=batch, shape=shape, env=env
            )
        cpu_ms = []

        def cpu_timed() -> None:
            t0 = time.process_time()
            run()
            cpu_ms.append((time.process_time() - t0) * 1e3)

        wall = time_calls_ms(cpu_timed, iters=iters, warmup=warmup)
        env = dict(self.environment(), clock='process_cpu', wall_median_ms=float(np.median(wall)))
        return self.result(
            cpu_ms[max(warmup, 0) :], warmup=warmup, precision=precision, batch=batch,
            shape=shape, env=env,
        )  # fmt: skip

    def _runner(self, sess, inputs):
        if self.device == 'cpu':
            return lambda: sess.run(None, inputs)
        binding = sess.io_binding()
        import onnxruntime as ort

        for name, arr in inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, 'cuda', 0))
        for o in sess.get_outputs():
            binding.bind_output(o.name, 'cuda')

        def run():
            sess.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return run
