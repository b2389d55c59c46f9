"""PyTorch latency: eager, ``torch.compile`` and CUDA-graph variants.

Times ``module(x)`` for a fixed input. On GPU, CUDA events bracket each iteration (device
time, like trtexec's GPU compute time); on CPU, ``time.perf_counter``. :class:`DetectorPredict`
wraps an mmdet detector's normal inference path (data_preprocessor + ``predict``) so the
"what users run today" baseline is timed the same way as the exported graph.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from .base import LatencyBackend, LatencyResult, host_env, time_calls_ms
from .registry import LATENCY_BACKENDS

MODES = ('eager', 'compile', 'cudagraph')
DEVICES = ('cpu', 'cuda')


class DetectorPredict(nn.Module):
    """``raw images -> data_preprocessor -> predict(rescale=False)`` as one module."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor):
        from mmdet.structures import DetDataSample

        h, w = x.shape[-2:]
        samples = []
        for _ in range(x.shape[0]):
            s = DetDataSample()
            s.set_metainfo(
                dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), pad_shape=(h, w))
            )
            samples.append(s)
        data = self.detector.data_preprocessor(
            dict(inputs=list(x.unbind(0)), data_samples=samples), False
        )
        return self.detector.predict(data['inputs'], data['data_samples'], rescale=False)


@LATENCY_BACKENDS.register_module(name='torch')
class TorchBackend(LatencyBackend):
    name = 'torch'
    install_hint = 'pip install torch'

    def __init__(self, device: str = 'cpu', mode: str = 'eager', threads: Optional[int] = None):
        if device not in DEVICES:
            raise ValueError(f'torch device: got {device!r}; allowed: {", ".join(DEVICES)}')
        if mode not in MODES:
            raise ValueError(f'torch mode: got {mode!r}; allowed: {", ".join(MODES)}')
        if device == 'cuda' and not torch.cuda.is_available():
            raise ValueError('torch device cuda: no CUDA device is visible; use device="cpu"')
        if mode == 'cudagraph' and device != 'cuda':
            raise ValueError('torch mode cudagraph needs device="cuda"; on CPU use eager/compile')
        self.device = device
        self.mode = mode
        self.threads = threads

    @classmethod
    def available(cls) -> bool:
        return True

    def environment(self) -> Dict[str, Any]:
        env = host_env()
        threads = self.threads or torch.get_num_threads()
        if self.device == 'cuda':
            name = torch.cuda.get_device_name(0)
            env.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        else:
            name = env['cpu']
        env.update(
            backend=f'torch-{self.mode}',
            torch=torch.__version__,
            threads=threads,
            device=f'{self.device}:{name}:{threads}t' if self.device == 'cpu' else f'cuda:{name}',
        )
        return env

    def _prepare(self, module: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
        if self.mode == 'eager':
            return lambda: module(x)
        if self.mode == 'compile':
            compiled = torch.compile(module)
            return lambda: compiled(x)
        # CUDA graph: capture once on a side stream, replay; static shapes/addresses only
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                module(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                module(static_x)
        except RuntimeError as e:
            raise RuntimeError(
                f'CUDA-graph capture of {type(module).__name__} failed ({e}); graphs need '
                'static shapes and no host syncs (data-dependent NMS is not capturable: time '
                'the network without post-processing, or use mode="eager"/"compile")'
            ) from e
        return graph.replay

    @torch.no_grad()
    def measure(
        self,
        model: nn.Module,
        *,
        shape: Tuple[int, int] = (320, 320),
        batch: int = 1,
        iters: int = 50,
        warmup: int = 10,
        precision: str = 'fp32',
        inputs: Optional[torch.Tensor] = None,
    ) -> LatencyResult:
        if precision not in ('fp32', 'fp16'):
            raise ValueError(f'torch precision: got {precision!r}; allowed: fp32, fp16')
        prev_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            model = model.to(self.device).eval()
            x = inputs if inputs is not None else torch.rand(batch, 3, *shape) * 255
            x = x.to(self.device)
            if precision == 'fp16':
                model = model.half()
                x = x.half()
            run = self._prepare(model, x)
            times = time_calls_ms(run, iters=iters, warmup=warmup, cuda=self.device == 'cuda')
        finally:
            torch.set_num_threads(prev_threads)
        return self.result(times, warmup=warmup, precision=precision, batch=batch, shape=shape)
