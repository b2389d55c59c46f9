"""Passes over an exported ONNX graph: fp16 conversion of the network part only."""

from __future__ import annotations

import warnings
from typing import Dict


def _unshare_initializers(proto) -> None:
    """Give every consumer its own copy of a shared initializer.

    The exporter deduplicates equal constants (e.g. GroupNorm weights that are all ones), so
    one fp32 tensor may feed a converted and a blocked node; the converter then leaves it
    fp32 and the half node gets mixed input types. Copies keep each side consistent.
    """
    import onnx

    inits = {t.name: t for t in proto.graph.initializer}
    seen: Dict[str, int] = {}
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name not in inits:
                continue
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f'{name}__{seen[name]}'
                proto.graph.initializer.append(copy)
                node.input[i] = copy.name


def to_fp16(proto):
    """Half-precision network, fp32 everywhere else (I/O, normalisation, decoding, NMS).

    The TorchScript exporter names nodes by module scope, so the detector's own layers are
    the nodes under ``/backbone/``, ``/neck/`` and ``/bbox_head/``; the rest is blocked from
    conversion and Casts are inserted at the boundaries. TensorRT 11 builds a strongly typed
    FP16 engine from this graph.
    """
    try:
        from onnxconverter_common import float16
    except ImportError as e:
        raise ImportError(
            'fp16 export needs onnxconverter-common: pip install onnxconverter-common'
        ) from e

    _unshare_initializers(proto)
    scopes = ('/backbone/', '/neck/', '/bbox_head/')
    block = [n.name for n in proto.graph.node if not n.name.startswith(scopes)]
    out_types = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        half = float16.convert_float_to_float16(
            proto, keep_io_types=True, node_block_list=block, disable_shape_infer=False
        )
    _restore_output_types(half, out_types)
    return half


def _restore_output_types(proto, out_types: Dict[str, int]) -> None:
    """Undo the converter's fp16 Cast in front of outputs whose producer stayed fp32.

    onnxconverter-common (1.16) appends ``Cast(to=FLOAT16)`` before every float graph output
    even when ``keep_io_types=True`` and the producing node is in the block list, so ``dets``
    would come out as half. The outputs are produced by blocked (fp32) decoding/NMS nodes,
    so the Cast is retargeted to the original type and the declared output type restored.
    """
    producers = {o: n for n in proto.graph.node for o in n.output}
    for out in proto.graph.output:
        want = out_types.get(out.name)
        if want is None or out.type.tensor_type.elem_type == want:
            continue
        node = producers.get(out.name)
        if node is None or node.op_type != 'Cast':
            raise RuntimeError(
                f'fp16 conversion changed output {out.name!r} to type '
                f'{out.type.tensor_type.elem_type} and no Cast can be retargeted'
            )
        for attr in node.attribute:
            if attr.name == 'to':
                attr.i = want
        out.type.tensor_type.elem_type = want
