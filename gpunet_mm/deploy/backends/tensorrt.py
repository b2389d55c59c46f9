"""TensorRT latency: engines built from the exported ONNX, timed like trtexec.

Supports TensorRT 10.x and 11.x, which differ in how precision is chosen:

* **11.x** removed weak typing: there is no ``BuilderFlag.FP16``/``INT8`` and no calibrator.
  Every network is strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``): an FP16
  engine comes from an FP16 ONNX graph (``DeployConfig(precision='fp16')`` exports one: half
  network, fp32 I/O and NMS), INT8 from explicit Q/DQ nodes already in the graph.
* **10.x** still has weak typing: an fp32 graph plus ``BuilderFlag.FP16`` (or ``INT8`` with
  Q/DQ nodes); an FP16 graph is built strongly typed there too.

:func:`plan_engine_build` computes all of that as plain data (flags, network flags, the
optimisation profile, the NMS plugin, the cache files) without importing TensorRT, so it is
tested on machines without a GPU; :func:`build_engine` only carries the plan out. Engines
are cached by a hash of (ONNX bytes, plan, TensorRT version, GPU); the timing cache is kept
per GPU and TensorRT version. Timing uses CUDA events around ``execute_async_v3`` on a
dedicated stream: the median of per-iteration GPU compute times, trtexec's headline figure.

TensorRT is an optional extra (``pip install gpunet_mm[trt]``, i.e. ``tensorrt-cu12`` or
``tensorrt-cu13``); without it :class:`TensorRTBackend` raises a clear
:class:`BackendUnavailableError` instead of an ImportError trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ...atomic_write import atomic_write_bytes
from .base import (
    BackendUnavailableError,
    LatencyBackend,
    LatencyResult,
    gpu_name,
    host_env,
    time_calls_ms,
)
from .registry import LATENCY_BACKENDS

SUPPORTED_MAJORS = (10, 11)
TRT_PRECISIONS = ('fp32', 'fp16', 'int8')
INSTALL_HINT = (
    'TensorRT is not installed: pip install "gpunet_mm[trt]" (tensorrt-cu12 / tensorrt-cu13, '
    'TensorRT 10.x or 11.x, needs an NVIDIA GPU and driver); or use --backend onnxruntime'
)


def trt_version() -> Optional[str]:
    """The installed TensorRT version string, or None."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError:
        return None
    return trt.__version__


def _major(version: str) -> int:
    try:
        return int(str(version).split('.')[0])
    except ValueError as e:
        raise ValueError(f'TensorRT version: got {version!r}; expected like "10.13.0"') from e


def inspect_onnx(onnx_path: str) -> Dict[str, Any]:
    """Facts the build plan needs: graph precision, Q/DQ nodes, plugins, input name."""
    import onnx

    proto = onnx.load(onnx_path, load_external_data=False)
    ops = {n.op_type for n in proto.graph.node}
    fp16_inits = sum(1 for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    return dict(
        precision='fp16' if fp16_inits else 'fp32',
        has_qdq=bool({'QuantizeLinear', 'DequantizeLinear'} & ops),
        plugins=sorted(o for o in ops if o.endswith('_TRT')),
        has_onnx_nms='NonMaxSuppression' in ops,
        input_name=proto.graph.input[0].name,
    )


@dataclass
class EngineBuildPlan:
    """Everything :func:`build_engine` will do, as data (JSON-able, testable without a GPU)."""

    trt_version: str
    precision: str
    strongly_typed: bool
    network_flags: List[str]
    builder_flags: List[str]
    profiles: Dict[str, Dict[str, List[int]]]
    plugins: List[str]
    load_plugin_library: bool
    workspace_mb: int
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def plan_engine_build(
    trt_version: str,
    precision: str,
    *,
    onnx_precision: str = 'fp32',
    has_qdq: bool = False,
    plugins: Tuple[str, ...] = ('EfficientNMS_TRT',),
    has_onnx_nms: bool = False,
    input_name: str = 'input',
    profile: Optional[Dict[str, Tuple[int, ...]]] = None,
    workspace_mb: int = 4096,
) -> EngineBuildPlan:
    """Decide how to build an engine for ``precision`` on TensorRT ``trt_version``.

    Raises ValueError with the fix when the ONNX cannot give that precision on that version
    (e.g. FP16 on 11.x from an fp32 graph, INT8 without Q/DQ nodes).
    """
    major = _major(trt_version)
    if major not in SUPPORTED_MAJORS:
        raise ValueError(
            f'TensorRT version {trt_version}: supported majors {SUPPORTED_MAJORS} '
            '(8.x/9.x are not: their weak-typing/plugin APIs differ)'
        )
    if precision not in TRT_PRECISIONS:
        raise ValueError(
            f'TensorRT precision: got {precision!r}; allowed: {", ".join(TRT_PRECISIONS)}'
        )
    notes: List[str] = []
    if precision == 'int8' and not has_qdq:
        raise ValueError(
            'TensorRT precision int8 needs explicit QuantizeLinear/DequantizeLinear nodes in '
            f'the ONNX graph (TensorRT {trt_version}: '
            + ('no calibrators exist in 11.x' if major >= 11 else 'calibrators are not used here')
            + '); quantise the ONNX first (e.g. NVIDIA ModelOpt) or choose fp16/fp32'
        )
    builder_flags: List[str] = []
    if major >= 11:
        strongly_typed = True
        if precision == 'fp16' and onnx_precision != 'fp16':
            raise ValueError(
                f'TensorRT {trt_version} builds FP16 engines only from an FP16 ONNX graph '
                '(strongly typed networks; BuilderFlag.FP16 was removed): export with '
                "--fp16 / DeployConfig(precision='fp16')"
            )
        if precision == 'fp32' and onnx_precision == 'fp16':
            notes.append('fp16 graph on a strongly typed network: the engine runs in fp16')
        notes.append('11.x: precision comes from the graph (strongly typed)')
    else:
        strongly_typed = onnx_precision == 'fp16' or has_qdq and precision == 'int8'
        if not strongly_typed:
            if precision == 'fp16':
                builder_flags.append('FP16')
            if precision == 'int8':
                builder_flags += ['INT8', 'FP16']
        notes.append(
            '10.x: ' + ('strongly typed from the graph' if strongly_typed else 'builder flags')
        )
    network_flags = ['STRONGLY_TYPED'] if strongly_typed else []
    trt_plugins = [p for p in plugins if p.endswith('_TRT')]
    if has_onnx_nms:
        notes.append(
            'ONNX NonMaxSuppression maps to INMSLayer (data-dependent output shapes); export '
            'with backend=tensorrt for EfficientNMS_TRT fixed-size outputs'
        )
    profiles = {}
    if profile is not None:
        profiles[input_name] = {k: list(profile[k]) for k in ('min', 'opt', 'max')}
    return EngineBuildPlan(
        trt_version=str(trt_version),
        precision=precision,
        strongly_typed=strongly_typed,
        network_flags=network_flags,
        builder_flags=builder_flags,
        profiles=profiles,
        plugins=trt_plugins,
        load_plugin_library=bool(trt_plugins),
        workspace_mb=int(workspace_mb),
        notes=notes,
    )


def plan_for_onnx(
    onnx_path: str,
    precision: str,
    trt_version_str: str,
    profile: Optional[Dict[str, Tuple[int, ...]]] = None,
    workspace_mb: int = 4096,
) -> EngineBuildPlan:
    info = inspect_onnx(onnx_path)
    if profile is None:
        profile = _profile_from_metadata(onnx_path)
    return plan_engine_build(
        trt_version_str,
        precision,
        onnx_precision=info['precision'],
        has_qdq=info['has_qdq'],
        plugins=tuple(info['plugins']),
        has_onnx_nms=info['has_onnx_nms'],
        input_name=info['input_name'],
        profile=profile,
        workspace_mb=workspace_mb,
    )


def _profile_from_metadata(onnx_path: str) -> Optional[Dict[str, Tuple[int, ...]]]:
    """The min/opt/max input shapes the exporter stored (dynamic exports only)."""
    import onnx

    proto = onnx.load(onnx_path, load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    prof = json.loads(meta.get('gpunet_mm.profile') or 'null')
    if not prof or prof['min'] == prof['max']:
        return None
    return {k: tuple(v) for k, v in prof.items()}


def _import_trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailableError(INSTALL_HINT) from e
    return trt


def build_engine(
    onnx_path: str, plan: EngineBuildPlan, cache_dir: str = '.trt_cache', verbose: bool = False
) -> bytes:
    """Build (or load from the engine cache) a serialised engine for ``plan``."""
    trt = _import_trt()
    if _major(trt.__version__) != _major(plan.trt_version):
        raise ValueError(f'plan is for TensorRT {plan.trt_version}, installed {trt.__version__}')
    os.makedirs(cache_dir, exist_ok=True)
    gpu = gpu_name().replace(' ', '_')
    with open(onnx_path, 'rb') as f:
        onnx_bytes = f.read()
    key = hashlib.sha256(
        onnx_bytes + json.dumps(plan.to_dict(), sort_keys=True).encode() + gpu.encode()
    ).hexdigest()[:24]
    engine_file = osp.join(cache_dir, f'{key}.engine')
    if osp.isfile(engine_file):
        with open(engine_file, 'rb') as f:
            return f.read()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    if plan.load_plugin_library:
        trt.init_libnvinfer_plugins(logger, '')
    builder = trt.Builder(logger)
    flags = 0
    for name in plan.network_flags:
        flag = getattr(trt.NetworkDefinitionCreationFlag, name, None)
        if flag is None and _major(trt.__version__) >= 11:
            continue  # strongly typed is the only mode left; releases may drop the flag
        if flag is None:
            raise RuntimeError(f'TensorRT {trt.__version__} has no network flag {name}')
        flags |= 1 << int(flag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f'TensorRT could not parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    timing_file = osp.join(cache_dir, f'timing_{trt.__version__}_{gpu}.cache')
    blob = b''
    if osp.isfile(timing_file):
        with open(timing_file, 'rb') as f:
            blob = f.read()
    timing_cache = config.create_timing_cache(blob)
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    for name, shapes in plan.profiles.items():
        prof = builder.create_optimization_profile()
        prof.set_shape(name, shapes['min'], shapes['opt'], shapes['max'])
        config.add_optimization_profile(prof)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT engine build failed for {onnx_path} (plan {plan.to_dict()})')
    engine = bytes(serialized)
    atomic_write_bytes(timing_file, bytes(config.get_timing_cache().serialize()))
    atomic_write_bytes(engine_file, engine)
    return engine


@LATENCY_BACKENDS.register_module(name='tensorrt')
class TensorRTBackend(LatencyBackend):
    name = 'tensorrt'
    install_hint = INSTALL_HINT

    def __init__(self, cache_dir: str = '.trt_cache', workspace_mb: int = 4096) -> None:
        self.trt = _import_trt()
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError('TensorRT needs a CUDA GPU; none is visible here')
        if _major(self.trt.__version__) not in SUPPORTED_MAJORS:
            raise BackendUnavailableError(
                f'TensorRT {self.trt.__version__} installed; supported: 10.x and 11.x'
            )
        self.cache_dir = cache_dir
        self.workspace_mb = workspace_mb

    @classmethod
    def available(cls) -> bool:
        return trt_version() is not None

    def environment(self) -> Dict[str, Any]:
        import torch

        env = host_env()
        driver = None
        try:
            driver = torch.cuda.driver_version() if hasattr(torch.cuda, 'driver_version') else None
        except Exception:  # noqa: BLE001
            driver = None
        env.update(
            backend='tensorrt',
            tensorrt=self.trt.__version__,
            cuda_runtime=torch.version.cuda,
            cuda_driver=driver,
            device=f'cuda:{gpu_name()}',
        )
        return env

    def measure(
        self,
        model: str,
        *,
        shape: Tuple[int, int] = (320, 320),
        batch: int = 1,
        iters: int = 200,
        warmup: int = 50,
        precision: str = 'fp16',
        plan: Optional[EngineBuildPlan] = None,
    ) -> LatencyResult:
        import torch

        trt = self.trt
        plan = plan or plan_for_onnx(
            model, precision, trt.__version__, workspace_mb=self.workspace_mb
        )
        engine_bytes = build_engine(model, plan, self.cache_dir)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(engine_bytes)
        context = engine.create_execution_context()
        dtypes = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.INT32: torch.int32,
            trt.DataType.INT64: torch.int64,
            trt.DataType.BOOL: torch.bool,
        }
        buffers = {}
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        for name in names:
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                context.set_input_shape(name, (batch, 3, *shape))
        for name in names:
            dims = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in dims):
                raise RuntimeError(
                    f'output {name} has a data-dependent shape {dims}: export with '
                    'backend=tensorrt (EfficientNMS_TRT, fixed-size outputs)'
                )
            t = torch.empty(dims, dtype=dtypes[engine.get_tensor_dtype(name)], device='cuda')
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT and t.is_floating_point():
                t.uniform_(0, 255)
            buffers[name] = t
            context.set_tensor_address(name, t.data_ptr())
        stream = torch.cuda.Stream()
        times = time_calls_ms(
            lambda: context.execute_async_v3(stream.cuda_stream),
            iters=iters,
            warmup=warmup,
            cuda=True,
            stream=stream,
        )
        env = dict(self.environment(), build_plan=plan.to_dict())
        return self.result(
            times, warmup=warmup, precision=precision, batch=batch, shape=shape, env=env
        )
