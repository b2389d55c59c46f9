"""The latency-measurement service: one detector or classifier, one target, one cache key.

Every figure of the package goes through here: the search's latency worker
(``search/latency_service.py``), ``tools/benchmark_latency.py`` (:func:`measure_config`),
the hub benchmark and the deploy benchmarks. One key function (:func:`latency_key`) names a
measurement, so a network timed by one of them is found in the cache by all the others::

      from gpunet_mm.deploy import LatencyCache, LatencyTarget, measure_latency
      target = LatencyTarget(backend='onnxruntime', device='cpu', threads=1,
                             shape=(256, 256), batch=1, precision='fp32', clock='cpu')
      res, cached = measure_latency(arch, 'configs/demo/retinanet_gpunet-0_fpn_demo.py',
                                    target, cache=LatencyCache('work_dir/latency.sqlite'),
                                    work_dir='work_dir/onnx')
      res.median_ms

* ``task='detection'`` (:func:`measure_detector`): the **whole** detector as
  :func:`~gpunet_mm.deploy.export_onnx` exports it and ``tools/deploy.py`` runs it:
  normalisation, backbone, neck, head, per-level sigmoid + pre-top-k, box decoding and NMS
  in one graph, timed on the target's backend.
* ``task='classification'``: backbone, pooling and head (input tensor to logits), the
  default template being the release classifier (:data:`RELEASE_CLASSIFIER`).

``arch`` is a :class:`~gpunet_mm.models.arch_spec.GPUNetArch` put into the template by
:func:`~gpunet_mm.arch_config.with_arch`, or None to time the template's own backbone (any
mmdet config, e.g. a ResNet one). The template is a config path, an mmengine
``Config``/dict holding ``model``, or a model dict. The key holds the arch hash, the
template hash (backbone-free, with the post-processing and NMS load for detectors), shape,
batch, precision, backend and device incl. threads, so a result is never measured twice,
across processes and tools too; ``cache.get(key)`` answers "do we already know?".

NMS cost depends on how many boxes pass the score threshold. A randomly initialised head
scores every box at the focal-loss prior (~0.01, below a 0.05 threshold), so NMS would see
nothing; :attr:`LatencyTarget.score_fraction` re-seeds the classification layer so that this
fraction of (prior, class) pairs scores above the threshold on the timing input, as a
trained detector does (0.002: ~100 candidates at 256x256 with 4 classes; 0 keeps the prior).

``clock='cpu'`` times runs with the process CPU time; the ONNX Runtime backend owns that
clock and its rule (``gpunet_mm.deploy.backends.base.check_cpu_clock``).
"""

from __future__ import annotations

import copy
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

from ..arch_config import ARCH_KEYS, is_classifier, is_gpunet, with_arch
from ..complexity import TensorMode
from ..models.arch_spec import GPUNetArch
from ..models.classifiers import release_classifier_cfg
from .backends import LATENCY_BACKENDS, allowed_backends, get_backend
from .backends.base import CLOCKS, LatencyBackend, LatencyResult, check_cpu_clock
from .cache import LatencyCache, LatencyKey, config_hash
from .config import PRECISIONS, DeployConfig, as_hw

#: the search's quick latency proxy, a light RetinaNet around any GPUNet (CPU friendly): a
#: config file shipped with the package, so it can be read, copied and passed as a template
SMALL_RETINANET_CFG = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'small_retinanet.py')
#: its ``model`` dict, the default detector template (:func:`resolve_template`)
SMALL_RETINANET: Dict[str, Any] = Config.fromfile(SMALL_RETINANET_CFG).model.to_dict()
#: the default classifier template: the release's ImageNet classifier (backbone, pooling,
#: tail head; its widths come from the arch)
RELEASE_CLASSIFIER: Dict[str, Any] = release_classifier_cfg(tier=0)
TASKS = ('detection', 'classification')

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
                f'latency target backend: got {self.backend!r}; allowed: {allowed_backends()}'
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

    def make_backend(self) -> LatencyBackend:
        """The target's backend (the clock is the ONNX Runtime backend's)."""
        kwargs: Dict[str, Any] = {}
        if self.backend == 'onnxruntime':
            kwargs = dict(device=self.device, threads=self.threads, clock=self.clock)
        elif self.backend == 'torch':
            kwargs = dict(device=self.device, threads=self.threads)
        return get_backend(self.backend, **kwargs)

    def shape_for(self, arch: Optional[GPUNetArch]) -> Tuple[int, int]:
        if self.shape:
            return self.shape
        if arch is None:
            raise ValueError(
                'latency target shape: got None for a template without a GPUNet arch; '
                'allowed: an explicit (H, W)'
            )
        return (arch.resolution, arch.resolution)

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


# ----------------------------------------------------------------------------- templates
def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f'latency task: got {task!r}; allowed: {", ".join(TASKS)}')


def resolve_template(template: Template = None, task: str = 'detection') -> Dict[str, Any]:
    """The *model* dict of a template: a config path, a Config/dict with ``model``, a model
    dict (with ``type``), or None (:data:`SMALL_RETINANET` for detection,
    :data:`RELEASE_CLASSIFIER` for classification)."""
    _check_task(task)
    if template is None:
        return copy.deepcopy(SMALL_RETINANET if task == 'detection' else RELEASE_CLASSIFIER)
    if isinstance(template, str):
        if not osp.isfile(template):
            raise FileNotFoundError(f'{task} template config not found: {template}')
        template = Config.fromfile(template)
    if hasattr(template, 'to_dict'):
        template = template.to_dict()
    if not isinstance(template, Mapping):
        raise TypeError(
            f'{task} template: got {type(template).__name__}; allowed: a config path, an '
            'mmengine Config or dict holding `model`, or a model dict'
        )
    model = template.get('model', template)
    if hasattr(model, 'to_dict'):
        model = model.to_dict()
    if 'type' not in model or 'backbone' not in model:
        raise ValueError(
            f'{task} template has no model with a backbone (keys: {sorted(model)}); give a '
            f'{task} config whose model.backbone is GPUNet'
        )
    return copy.deepcopy(dict(model))


def config_arch(template: Template, task: str = 'detection') -> Optional[GPUNetArch]:
    """The arch of a template's GPUNet backbone (its ``tier`` or ``arch``); None for another
    backbone."""
    from ..models.backbones.gpunet import resolve_arch

    bb = resolve_template(template, task)['backbone']
    if not is_gpunet(bb):
        return None
    return resolve_arch(bb.get('tier'), bb.get('arch'))


def model_cfg(
    arch: Optional[GPUNetArch], template: Template = None, task: str = 'detection'
) -> Dict[str, Any]:
    """The model dict that is timed: the template with ``arch`` put in by
    :func:`~gpunet_mm.arch_config.with_arch` (None: the template's own backbone, as is)."""
    model = resolve_template(template, task)
    return model if arch is None else with_arch(model, arch)


def template_hash(template: Template = None, task: str = 'detection', **extra: Any) -> str:
    """Hash of the template without what the arch decides (the cache's ``model_hash``): the
    backbone's arch/tier, the neck's inputs, a classifier head's widths and training-only
    keys go. A detector's hash is the one measure_detector's keys always had (variant
    ``'e2e'``), so caches written by the search keep answering."""
    cfg = resolve_template(template, task)
    bb = dict(cfg.pop('backbone', {}))
    for k in (*ARCH_KEYS, 'frozen_stages', 'norm_eval'):
        bb.pop(k, None)
    if isinstance(cfg.get('neck'), Mapping):
        cfg['neck'] = {k: v for k, v in cfg['neck'].items() if k != 'in_channels'}
    if task == 'classification' and isinstance(cfg.get('head'), Mapping):
        drop = ('in_channels', 'hidden_channels')
        cfg['head'] = {k: v for k, v in cfg['head'].items() if k not in drop}
    cfg.pop('train_cfg', None)
    blob = dict(cfg=cfg, variant='e2e' if task == 'detection' else 'cls', backbone=bb)
    if extra:
        blob['extra'] = extra
    return config_hash(blob)


def _deploy_cfg(target: LatencyTarget, shape: Tuple[int, int]) -> DeployConfig:
    return DeployConfig(
        backend='tensorrt' if target.backend == 'tensorrt' else 'onnxruntime',
        precision=target.precision,
        input_shape=shape,
        batch_size=target.batch,
        post_processing=dict(target.post_processing or {}),
    )


def _backend_key(target: LatencyTarget, backend: Any) -> str:
    return backend.name if target.backend != 'torch' else f'torch-{backend.mode}'


def arch_key(arch: GPUNetArch) -> str:
    """The arch field of a latency key: the network's hash without its ``resolution``.

    The input size is a key field of its own (``shape``), so GPUNet-0 timed at 128x128 by
    the search (an arch of resolution 128) and by ``tools/benchmark_latency.py --shape 128
    128`` (the tier, resolution 224) is one measurement.
    """
    d = arch.to_dict()
    for k in ('name', 'meta', 'resolution'):
        d.pop(k, None)
    return config_hash(d)


def latency_key(
    arch: Optional[GPUNetArch],
    template: Template,
    target: LatencyTarget,
    backend: Optional[LatencyBackend] = None,
    task: str = 'detection',
) -> LatencyKey:
    """The one cache key of a measurement (:func:`measure_latency` and every tool use it).

    A detector's model hash holds the post-processing, the NMS load and the clock; a
    classifier's the clock. ``arch=None`` keys the template's own backbone by its config.
    """
    backend = backend or target.make_backend()
    model = resolve_template(template, task)
    shape = target.shape_for(arch)
    if task == 'detection':
        deploy = _deploy_cfg(target, shape).to_dict()
        for k in ('input_shape', 'batch_size', 'precision'):  # already key fields
            deploy.pop(k)
        deploy.pop('masks', None)  # never timed: a search compares the detector up to its boxes
        model_hash = template_hash(
            model,
            task,
            deploy=deploy,
            score_fraction=float(target.score_fraction),
            clock=target.clock,
        )
    else:
        model_hash = template_hash(model, task, clock=target.clock)
    arch_hash = arch_key(arch) if arch is not None else 'cfg-' + config_hash(model['backbone'])
    return LatencyKey(
        arch_hash=arch_hash,
        shape=shape,
        batch=target.batch,
        precision=target.precision,
        backend=_backend_key(target, backend),
        device=backend.device_key(),
        model_hash=model_hash,
    )


# ----------------------------------------------------------------------------- building
def timing_input(shape: Tuple[int, int], batch: int = 1, seed: int = 0) -> np.ndarray:
    """The fixed 0-255 image batch every measurement runs on (as the ORT backend draws it)."""
    rng = np.random.default_rng(seed)
    return (rng.random((batch, 3, *shape)) * 255).astype(np.float32)


def build_arch_detector(
    arch: Optional[GPUNetArch], template: Template, target: LatencyTarget
) -> Tuple[nn.Module, DeployConfig]:
    """The detector for ``arch`` (seeded for the NMS load) and its deploy config."""
    from .export import build_detector, make_wrapper
    from .parity import seed_head

    shape = target.shape_for(arch)
    torch.manual_seed(0)
    model = build_detector(Config(dict(model=model_cfg(arch, template))))
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


def build_classifier(arch: Optional[GPUNetArch], template: Template = None) -> nn.Module:
    """The classifier for ``arch`` (seeded weights, eval mode)."""
    from ..apis.runner import build_model

    torch.manual_seed(0)
    return build_model(model_cfg(arch, template, 'classification'), 'mmpretrain').eval()


def _write_atomically(out_file: str, write) -> None:
    from ..atomic_write import atomic_path

    with atomic_path(out_file) as tmp:
        write(tmp)


def export_detector(
    arch: Optional[GPUNetArch], template: Template, target: LatencyTarget, out_file: str
) -> Dict[str, Any]:
    """Export the whole detector for ``arch`` to ``out_file`` (atomically); the summary."""
    from .export import export_onnx

    model, deploy_cfg = build_arch_detector(arch, template, target)
    summary: Dict[str, Any] = {}
    _write_atomically(out_file, lambda tmp: summary.update(export_onnx(model, deploy_cfg, tmp)))
    summary['onnx'] = osp.abspath(out_file)
    return summary


def export_classifier(
    arch: Optional[GPUNetArch], template: Template, target: LatencyTarget, out_file: str
) -> None:
    """Export the classifier for ``arch`` (input tensor to ``logits``, fp32) to ``out_file``."""
    import warnings

    model = build_classifier(arch, template)
    shape = target.shape_for(arch)

    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                TensorMode(model),
                (torch.rand(target.batch, 3, *shape),),
                tmp,
                dynamo=False,
                opset_version=17,
                input_names=['input'],
                output_names=['logits'],
            )

    _write_atomically(out_file, write)


# ----------------------------------------------------------------------------- timing
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
    if backend.clock != target.clock:
        raise ValueError(
            f'time_onnx: the backend times with clock {backend.clock!r}, the target asks '
            f'for {target.clock!r}; allowed: a backend from target.make_backend()'
        )
    sess = session or backend.session(path)
    inputs = {'input': timing_input(shape, target.batch)}
    if target.precision == 'fp16' and 'float16' in sess.get_inputs()[0].type:
        inputs['input'] = inputs['input'].astype(np.float16)
    return backend.measure(path, session=sess, inputs=inputs, **kw)


def measure_latency(
    arch: Optional[GPUNetArch],
    template: Template = None,
    target: LatencyTarget = LatencyTarget(),
    cache: Optional[LatencyCache] = None,
    work_dir: Optional[str] = None,
    task: str = 'detection',
    backend: Optional[LatencyBackend] = None,
) -> Tuple[LatencyResult, bool]:
    """Latency of ``arch`` in ``template`` on ``target``; returns (result, cached).

    Measured once per :func:`latency_key`: a cache hit returns the stored result without
    building anything. With ``work_dir`` the ONNX file stays there as ``<key digest>.onnx``
    and is reused; else it goes to a temporary folder that is removed. ``result.env`` holds
    the environment, the clock, ``onnx`` (the file it timed) and the arch. ``backend``: a
    backend built by the caller (e.g. torch in ``compile`` mode); default the target's.
    """
    _check_task(task)
    backend = backend or target.make_backend()
    key = latency_key(arch, template, target, backend, task)
    shape = key.shape
    info: Dict[str, Any] = dict(task=task)
    if task == 'detection':
        info['post_processing'] = True
    if arch is not None:
        info['arch'] = arch.to_dict()

    def run() -> LatencyResult:
        if target.backend == 'torch':
            if task == 'detection':
                from .export import make_wrapper

                model, deploy_cfg = build_arch_detector(arch, template, target)
                net, precision = make_wrapper(model, deploy_cfg), 'fp32'
            else:
                net, precision = TensorMode(build_classifier(arch, template)), target.precision
            res = backend.measure(
                net,
                **dict(target.measure_kwargs(shape), precision=precision),
                inputs=torch.from_numpy(timing_input(shape, target.batch)),
            )
            res.env.update(clock='wall', **info)
            return res
        tmp = tempfile.mkdtemp(prefix='gpunet_lat_') if work_dir is None else None
        folder = work_dir or tmp
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'{key.digest()}.onnx')
        try:
            if not osp.isfile(path):
                export = export_detector if task == 'detection' else export_classifier
                export(arch, template, target, path)
            res = time_onnx(path, target, shape, backend=backend)
            res.env.update(onnx=path if tmp is None else None, **info)
            return res
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    if cache is None:
        return run(), False
    return cache.get_or_measure(key, run)


def measure_detector(
    arch: Optional[GPUNetArch],
    template_cfg: Template = None,
    target: LatencyTarget = LatencyTarget(),
    cache: Optional[LatencyCache] = None,
    work_dir: Optional[str] = None,
) -> LatencyResult:
    """End-to-end latency (decoding and NMS included) of ``arch`` in ``template_cfg``: the
    result of :func:`measure_latency` with ``task='detection'``."""
    return measure_latency(arch, template_cfg, target, cache, work_dir)[0]


def measure_config(
    config: Template,
    target: LatencyTarget,
    cache: Optional[LatencyCache] = None,
    work_dir: Optional[str] = None,
    backend: Optional[LatencyBackend] = None,
) -> Tuple[LatencyResult, bool]:
    """Latency of a whole detector or classifier config as it stands (what
    ``tools/benchmark_latency.py`` times): its GPUNet backbone's tier or arch goes through
    the same key as the search's candidates, so either finds the other's measurement."""
    model = resolve_template(config)
    task = 'classification' if is_classifier(model) else 'detection'
    arch = config_arch(model, task)
    return measure_latency(arch, model, target, cache, work_dir, task=task, backend=backend)
