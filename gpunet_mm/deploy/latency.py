"""Measure a GPUNet architecture inside a detector, through the cache.

The search asks "how fast is this backbone *as deployed in this detector*?" for every
candidate it trains, and the predictor needs hundreds of such figures to be fitted. Two
measurements live here:

* :func:`measure_detector` (what the search uses): the **whole** detector as
  :func:`~gpunet_mm.deploy.export.export_onnx` exports it and ``tools/deploy.py`` runs it:
  normalisation, backbone, neck, head, per-level sigmoid + pre-top-k, box decoding and NMS
  in one graph, timed on the target's backend. Stable API for the search's latency worker::

      from gpunet_mm.deploy import LatencyCache, LatencyTarget, measure_detector
      target = LatencyTarget(backend='onnxruntime', device='cpu', threads=1,
                             shape=(256, 256), batch=1, precision='fp32', clock='cpu')
      res = measure_detector(arch, 'configs/demo/retinanet_gpunet-0_fpn_demo.py', target,
                             cache=LatencyCache('work_dir/latency.sqlite'),
                             work_dir='work_dir/onnx')
      res.median_ms

  ``arch`` is a :class:`~gpunet_mm.models.arch_spec.GPUNetArch`; the template is a config
  path, an mmengine ``Config``/dict holding ``model``, or a model dict; its GPUNet backbone
  gets ``arch=`` and the neck's ``in_channels`` follow the arch's level channels
  (:func:`detector_cfg_for_arch`). The cache key (:func:`detector_latency_key`) holds the
  arch hash, the template hash (backbone-free, with the post-processing and NMS load:
  ``variant='e2e'``), shape, batch, precision, backend and device incl. threads, so a
  result is never measured twice, across processes too; ``cache.get(key)`` answers "do we
  already know?" without a worker. The ONNX file is kept in ``work_dir`` when given.
* :func:`measure_arch`: the older network-only proxy (backbone + neck + head raw outputs, no
  decoding/NMS), kept for the network-only figures.

NMS cost depends on how many boxes pass the score threshold. A randomly initialised head
scores every box at the focal-loss prior (~0.01, below a 0.05 threshold), so NMS would see
nothing; :attr:`LatencyTarget.score_fraction` re-seeds the classification layer so that this
fraction of (prior, class) pairs scores above the threshold on the timing input, as a
trained detector does (0.002: ~100 candidates at 256x256 with 4 classes).

On a shared CPU, wall time measures the neighbours as much as the network.
``clock='cpu'`` times each ``session.run`` with the process CPU time instead: with one
intra-op thread ONNX Runtime runs every kernel on the calling thread, so on an idle machine
CPU time equals wall time, and under load it stays within a few percent while wall time
grows by half (see docs/deploy.md). With more threads the CPU time is the sum over threads,
not the latency, so that combination is refused (``check_cpu_clock``).
"""

from __future__ import annotations

import copy
import os
import os.path as osp
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

from ..models.arch_spec import GPUNetArch
from .backends import LATENCY_BACKENDS, get_backend
from .backends.base import LatencyResult
from .cache import LatencyCache, LatencyKey, config_hash
from .config import PRECISIONS, DeployConfig, as_hw

#: the search's quick latency proxy, a light RetinaNet around any GPUNet (CPU friendly): a
#: config file shipped with the package, so it can be read, copied and passed as a template
SMALL_RETINANET_CFG = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'small_retinanet.py')
#: its ``model`` dict, the default template (:func:`resolve_template`)
SMALL_RETINANET: Dict[str, Any] = Config.fromfile(SMALL_RETINANET_CFG).model.to_dict()

CLOCKS = ('wall', 'cpu')
Template = Union[str, Mapping[str, Any], None]


def _hw(value: Any) -> Tuple[int, int]:
    return as_hw(value, 'latency target shape', none='the arch resolution')


@dataclass(frozen=True)
class LatencyTarget:
    """Where and how latency is measured (one search target).

    Attributes:
        backend: ``'onnxruntime'``, ``'tensorrt'`` or ``'torch'`` (eager End2End wrapper).
        device: ``'cpu'`` or ``'cuda'``.
        precision: ``'fp32'`` or ``'fp16'`` (``'int8'`` needs a Q/DQ graph: not here).
        batch: static batch size of the export.
        threads: intra-op threads (ONNX Runtime / torch); None: all cores.
        iters, warmup: timed and untimed runs per measurement (the median is kept).
        shape: ``(H, W)`` input; None: the arch's own ``resolution`` (square).
        post_processing: overrides of :class:`~gpunet_mm.deploy.config.PostProcessing`
            (score/iou thresholds, max detections, pre-top-k); None: the template's test_cfg.
        score_fraction: NMS load, see the module docstring; 0 keeps the untrained prior.
        clock: ``'wall'`` or ``'cpu'`` (process CPU time per run: ONNX Runtime on the CPU
            with ``threads=1`` only, where it equals the wall latency; see
            ``check_cpu_clock``).
    """

    backend: str = 'onnxruntime'
    device: str = 'cpu'
    precision: str = 'fp32'
    batch: int = 1
    threads: Optional[int] = None
    iters: int = 20
    warmup: int = 5
    shape: Optional[Tuple[int, int]] = None
    post_processing: Optional[Mapping[str, Any]] = field(default=None, hash=False)
    score_fraction: float = 0.002
    clock: str = 'wall'

    def __post_init__(self) -> None:
        if self.backend not in LATENCY_BACKENDS.module_dict:
            raise ValueError(
                f'latency target backend: got {self.backend!r}; allowed: '
                + ', '.join(sorted(LATENCY_BACKENDS.module_dict))
            )
        if self.device not in ('cpu', 'cuda'):
            raise ValueError(f'latency target device: got {self.device!r}; allowed: cpu, cuda')
        if self.precision not in PRECISIONS:
            raise ValueError(
                f'latency target precision: got {self.precision!r}; allowed: '
                + ', '.join(PRECISIONS)
            )
        for name, lo in (('batch', 1), ('iters', 1), ('warmup', 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < lo:
                raise ValueError(f'latency target {name}: got {v!r}; allowed: integers >= {lo}')
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(
                f'latency target threads: got {self.threads!r}; allowed: integers >= 1 or None'
            )
        if self.shape is not None:
            object.__setattr__(self, 'shape', _hw(self.shape))
        if not 0.0 <= float(self.score_fraction) < 1.0:
            raise ValueError(
                f'latency target score_fraction: got {self.score_fraction!r}; allowed: [0, 1)'
            )
        if self.clock not in CLOCKS:
            raise ValueError(f'latency target clock: got {self.clock!r}; allowed: wall, cpu')
        if self.clock == 'cpu':
            check_cpu_clock(self.backend, self.device, self.threads)
        if self.post_processing is not None:
            DeployConfig(post_processing=dict(self.post_processing))  # validates keys/values

    def make_backend(self):
        kwargs: Dict[str, Any] = {}
        if self.backend in ('onnxruntime', 'torch'):
            kwargs = dict(device=self.device, threads=self.threads)
        return get_backend(self.backend, **kwargs)

    def shape_for(self, arch: GPUNetArch) -> Tuple[int, int]:
        return self.shape or (arch.resolution, arch.resolution)

    def measure_kwargs(self, shape: Tuple[int, int]) -> Dict[str, Any]:
        """The keywords of ``LatencyBackend.measure`` this target sets, at ``shape``."""
        return dict(
            shape=shape,
            batch=self.batch,
            iters=self.iters,
            warmup=self.warmup,
            precision=self.precision,
        )

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d['shape'] = list(self.shape) if self.shape else None
        d['post_processing'] = dict(self.post_processing) if self.post_processing else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencyTarget:
        """From a config dict (e.g. a search config's ``latency_target``); unknown keys fail."""
        allowed = {f.name for f in fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(
                f'latency target keys: got {sorted(unknown)}; allowed: {", ".join(sorted(allowed))}'
            )
        d = dict(d)
        if d.get('shape') is not None:
            d['shape'] = _hw(d['shape'])
        return cls(**d)


def check_cpu_clock(backend: str, device: str, threads: Optional[int]) -> None:
    """Refuse a ``clock='cpu'`` target whose CPU time is not its latency.

    The process CPU time of a ``session.run`` is its wall latency only when one thread does
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


# ----------------------------------------------------------------------------- templates
def resolve_template(template: Template = None) -> Dict[str, Any]:
    """The detector *model* dict of a template: a config path, a Config/dict with ``model``,
    a model dict (with ``type``), or None (:data:`SMALL_RETINANET`)."""
    if template is None:
        return copy.deepcopy(SMALL_RETINANET)
    if isinstance(template, str):
        if not osp.isfile(template):
            raise FileNotFoundError(f'detector template config not found: {template}')
        template = Config.fromfile(template)
    if hasattr(template, 'to_dict'):
        template = template.to_dict()
    if not isinstance(template, Mapping):
        raise TypeError(
            f'detector template: got {type(template).__name__}; allowed: a config path, an '
            'mmengine Config or dict holding `model`, or a model dict'
        )
    model = template.get('model', template)
    if hasattr(model, 'to_dict'):
        model = model.to_dict()
    if 'type' not in model or 'backbone' not in model:
        raise ValueError(
            f'detector template has no model with a backbone (keys: {sorted(model)}); give a '
            'detector config whose model.backbone is GPUNet'
        )
    return copy.deepcopy(dict(model))


def _is_gpunet(backbone: Mapping[str, Any]) -> bool:
    return str(backbone.get('type', '')).split('.')[-1] == 'GPUNet'


def detector_cfg_for_arch(
    arch: GPUNetArch, template: Template = None, out_indices: Optional[Sequence[int]] = None
) -> Dict[str, Any]:
    """The template's detector with ``arch`` as its GPUNet backbone and matching neck inputs.

    The template's backbone settings (``out_indices``, norm, frozen stages) are kept; ``tier``
    gives way to ``arch=`` and ``init_cfg`` is dropped (nothing to download). The neck's
    ``in_channels`` become the arch's channels at ``out_indices`` (default: the template's,
    else (2, 3, 4)).
    """
    cfg = resolve_template(template)
    bb = dict(cfg['backbone'])
    if not _is_gpunet(bb):
        raise ValueError(
            f'detector template backbone is {bb.get("type")!r}; allowed: GPUNet (the search '
            'replaces its arch)'
        )
    out_indices = tuple(out_indices or bb.get('out_indices') or (2, 3, 4))
    chans = arch.level_channels()
    bad = [i for i in out_indices if not -len(chans) <= i < len(chans)]
    if bad:
        raise ValueError(
            f'out_indices {list(out_indices)}: {bad} out of range for arch {arch.name!r} with '
            f'{len(chans)} levels (0..{len(chans) - 1})'
        )
    for k in ('tier', 'arch', 'init_cfg', 'pretrained'):
        bb.pop(k, None)
    bb.update(arch=arch.to_dict(), out_indices=out_indices, init_cfg=None)
    cfg['backbone'] = bb
    if isinstance(cfg.get('neck'), Mapping) and 'in_channels' in cfg['neck']:
        cfg['neck'] = dict(cfg['neck'], in_channels=[chans[i] for i in out_indices])
    return cfg


def template_hash(template: Template = None, variant: str = 'net', **extra: Any) -> str:
    """Hash of the detector template without what the arch decides (the cache's
    ``model_hash``): the backbone's arch/tier, the neck's inputs and training-only keys go."""
    cfg = resolve_template(template)
    bb = dict(cfg.pop('backbone', {}))
    for k in ('tier', 'arch', 'init_cfg', 'pretrained', 'frozen_stages', 'norm_eval'):
        bb.pop(k, None)
    if isinstance(cfg.get('neck'), Mapping):
        cfg['neck'] = {k: v for k, v in cfg['neck'].items() if k != 'in_channels'}
    cfg.pop('train_cfg', None)
    blob = dict(cfg=cfg, variant=variant)
    if variant != 'net':  # the network-only proxy keeps its old keys
        blob['backbone'] = bb
    if extra:
        blob['extra'] = extra
    return config_hash(blob)


# ----------------------------------------------------------------------------- timing
class _CpuTimedSession:
    """An ONNX Runtime session whose ``run`` also records the process CPU time it took."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.cpu_ms: List[float] = []

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, *args: Any, **kwargs: Any):
        t0 = time.process_time()
        out = self.session.run(*args, **kwargs)
        self.cpu_ms.append((time.process_time() - t0) * 1e3)
        return out


def timing_input(shape: Tuple[int, int], batch: int = 1, seed: int = 0) -> np.ndarray:
    """The fixed 0-255 image batch every measurement runs on (as the ORT backend draws it)."""
    rng = np.random.default_rng(seed)
    return (rng.random((batch, 3, *shape)) * 255).astype(np.float32)


def time_onnx(
    path: str,
    target: LatencyTarget,
    shape: Tuple[int, int],
    session: Any = None,
    backend: Any = None,
) -> LatencyResult:
    """Time an exported ONNX file on ``target`` (``session``/``backend`` may be reused)."""
    backend = backend or target.make_backend()
    kw = target.measure_kwargs(shape)
    if target.backend == 'tensorrt':
        return backend.measure(path, **kw)
    if target.backend != 'onnxruntime':
        raise ValueError(f'time_onnx: backend {target.backend!r} does not run ONNX files')
    sess = session or backend.session(path)
    inputs = {'input': timing_input(shape, target.batch)}
    if target.precision == 'fp16' and 'float16' in sess.get_inputs()[0].type:
        inputs['input'] = inputs['input'].astype(np.float16)
    if target.clock == 'wall':
        res = backend.measure(path, session=sess, inputs=inputs, **kw)
        res.env['clock'] = 'wall'
        return res
    check_cpu_clock(target.backend, target.device, backend.threads)  # the session's own count
    timed = _CpuTimedSession(sess)
    wall = backend.measure(path, session=timed, inputs=inputs, **kw)
    env = dict(wall.env, clock='process_cpu', wall_median_ms=wall.median_ms)
    cpu_ms = timed.cpu_ms[target.warmup :]
    return backend.result(
        cpu_ms,
        warmup=target.warmup,
        precision=target.precision,
        batch=target.batch,
        shape=shape,
        env=env,
    )


def _backend_key(target: LatencyTarget, backend: Any) -> str:
    return backend.name if target.backend != 'torch' else f'torch-{backend.mode}'


def _latency_key(
    arch: GPUNetArch, shape: Tuple[int, int], target: LatencyTarget, backend: Any, model_hash: str
) -> LatencyKey:
    """The key fields every measurement shares; ``model_hash`` says what was measured."""
    return LatencyKey(
        arch_hash=arch.structural_hash(),
        shape=shape,
        batch=target.batch,
        precision=target.precision,
        backend=_backend_key(target, backend),
        device=backend.device_key(),
        model_hash=model_hash,
    )


def _deploy_cfg(target: LatencyTarget, shape: Tuple[int, int]) -> DeployConfig:
    return DeployConfig(
        backend='tensorrt' if target.backend == 'tensorrt' else 'onnxruntime',
        precision=target.precision,
        input_shape=shape,
        batch_size=target.batch,
        post_processing=dict(target.post_processing or {}),
    )


def detector_latency_key(
    arch: GPUNetArch, template: Template, target: LatencyTarget, backend: Any = None
) -> LatencyKey:
    """The cache key of ``measure_detector(arch, template, target)`` (post-processing in)."""
    backend = backend or target.make_backend()
    shape = target.shape_for(arch)
    deploy = _deploy_cfg(target, shape).to_dict()
    for k in ('input_shape', 'batch_size', 'precision'):  # already key fields
        deploy.pop(k)
    deploy.pop('masks', None)  # never timed: a search compares the detector up to its boxes
    model_hash = template_hash(
        template,
        variant='e2e',
        deploy=deploy,
        score_fraction=float(target.score_fraction),
        clock=target.clock,
    )
    return _latency_key(arch, shape, target, backend, model_hash)


def build_arch_detector(
    arch: GPUNetArch, template: Template, target: LatencyTarget
) -> Tuple[nn.Module, DeployConfig]:
    """The detector for ``arch`` (seeded for the NMS load) and its deploy config."""
    from .export import build_detector, make_wrapper
    from .parity import seed_head

    shape = target.shape_for(arch)
    torch.manual_seed(0)
    model = build_detector(Config(dict(model=detector_cfg_for_arch(arch, template))))
    deploy_cfg = _deploy_cfg(target, shape)
    wrapper = make_wrapper(model, deploy_cfg)  # validates the shape against the stride
    if target.score_fraction > 0:
        x = torch.from_numpy(timing_input(shape, target.batch))
        if wrapper.bgr_to_rgb:
            x = x[:, [2, 1, 0]]
        x = (x - wrapper.mean) / wrapper.std
        seed_head(
            model,
            x,
            fraction=float(target.score_fraction),
            score=float(wrapper.post.score_threshold),
        )
    return model, deploy_cfg


def export_detector(
    arch: GPUNetArch, template: Template, target: LatencyTarget, out_file: str
) -> Dict[str, Any]:
    """Export the whole detector for ``arch`` to ``out_file`` (atomically); the summary."""
    from .export import export_onnx

    model, deploy_cfg = build_arch_detector(arch, template, target)
    tmp = f'{out_file}.part{os.getpid()}.onnx'
    try:
        summary = export_onnx(model, deploy_cfg, tmp)
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    summary['onnx'] = osp.abspath(out_file)
    return summary


def measure_detector(
    arch: GPUNetArch,
    template_cfg: Template = None,
    target: LatencyTarget = LatencyTarget(),
    cache: Optional[LatencyCache] = None,
    work_dir: Optional[str] = None,
) -> LatencyResult:
    """End-to-end latency (decoding and NMS included) of ``arch`` in ``template_cfg``.

    Measured once per (arch, template, target): a cache hit returns the stored result
    without building anything. With ``work_dir`` the ONNX file stays there as
    ``<key digest>.onnx`` and is reused; else it goes to a temporary folder that is removed.
    ``result.env`` holds the environment, the clock and ``onnx`` (the file it timed).
    """
    backend = target.make_backend()
    key = detector_latency_key(arch, template_cfg, target, backend)
    shape = key.shape

    def run() -> LatencyResult:
        if target.backend == 'torch':
            from .export import make_wrapper

            model, deploy_cfg = build_arch_detector(arch, template_cfg, target)
            res = backend.measure(
                make_wrapper(model, deploy_cfg),
                **dict(target.measure_kwargs(shape), precision='fp32'),
                inputs=torch.from_numpy(timing_input(shape, target.batch)),
            )
            res.env.update(clock='wall', post_processing=True, arch=arch.to_dict())
            return res
        tmp = None
        if work_dir is None:
            tmp = tempfile.mkdtemp(prefix='gpunet_e2e_')
        folder = work_dir or tmp
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'{key.digest()}.onnx')
        try:
            if not osp.isfile(path):
                export_detector(arch, template_cfg, target, path)
            res = time_onnx(path, target, shape, backend=backend)
            res.env.update(
                onnx=path if tmp is None else None, post_processing=True, arch=arch.to_dict()
            )
            return res
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    if cache is None:
        return run()
    return cache.get_or_measure(key, run)[0]


# ----------------------------------------------------------------------------- network only
class RawNetwork(nn.Module):
    """Backbone + neck + head with the head outputs flattened (no decoding / NMS)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor):
        outs = self.detector.bbox_head(self.detector.extract_feat(x))
        return tuple(t for group in outs for t in group)


def export_raw(model: nn.Module, shape: Tuple[int, int], batch: int, out_file: str) -> float:
    """Export :class:`RawNetwork` (static shape) to ONNX; returns seconds taken."""
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            RawNetwork(model).eval(),
            (torch.rand(batch, 3, *shape),),
            out_file,
            dynamo=False,
            opset_version=17,
            input_names=['input'],
            do_constant_folding=True,
        )
    return time.perf_counter() - t0


def measure_arch(
    arch: GPUNetArch,
    target: LatencyTarget = LatencyTarget(),
    shape: Optional[Tuple[int, int]] = None,
    cache: Optional[LatencyCache] = None,
    template: Template = None,
    work_dir: Optional[str] = None,
) -> Tuple[LatencyResult, bool]:
    """Network-only latency (no decoding/NMS) of ``arch``; returns (result, cached).

    The proxy of the first predictor; the search uses :func:`measure_detector`. ``shape``
    defaults to the target's shape, else the arch's resolution (square).
    """
    from ..apis.runner import build_model

    shape = tuple(shape or target.shape_for(arch))
    backend = target.make_backend()
    # the network-only proxy keeps its first keys: the clock enters only when not 'wall'
    extra = {} if target.clock == 'wall' else dict(clock=target.clock)
    key = _latency_key(arch, shape, target, backend, template_hash(template, **extra))

    def run() -> LatencyResult:
        torch.manual_seed(0)
        model = build_model(detector_cfg_for_arch(arch, template), 'mmdet').eval()
        if target.backend == 'torch':
            return backend.measure(RawNetwork(model), **target.measure_kwargs(shape))
        tmp = work_dir or tempfile.mkdtemp(prefix='gpunet_lat_')
        os.makedirs(tmp, exist_ok=True)
        path = osp.join(tmp, f'{key.digest()}.onnx')
        export_raw(model, shape, target.batch, path)
        try:
            return time_onnx(path, target, shape, backend=backend)
        finally:
            if work_dir is None:
                os.remove(path)
                os.rmdir(tmp)

    if cache is None:
        return run(), False
    return cache.get_or_measure(key, run)
