"""Files generated from the hub: OpenMMLab metafiles and the model-zoo tables of the docs.

One source of truth: figures live in ``models/tiers.py`` (published) and
``gpunet_mm/hub/data/*.jsonl`` (measured); ``configs/*/metafile.yml``, ``model-index.yml``
and the tables in ``docs/model_zoo.md`` are rendered from the hub by
``tools/misc/gen_metafiles.py`` and ``tools/misc/gen_model_zoo.py``, and tests check that the
committed files equal what these functions render.

Metafiles follow mmdet / mmpretrain: one ``Models`` item per config, ``Metadata`` with
``FLOPs``, ``Parameters`` and an ``inference time (ms/im)`` list (one item per hub row of that
config, with hardware, backend, batch size, mode, resolution and the row's source),
``Results`` where an accuracy exists, ``Weights`` where a checkpoint exists.
"""

from __future__ import annotations

import glob
import os.path as osp
import re
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import yaml

from ..models.tiers import PUBLISHED_TARGETS, TIER_NAMES, TIERS
from .configs import repo_root
from .entry import HubEntry
from .shipped import shipped_entries

HEADER = (
    '# Generated from the model hub (gpunet_mm/hub) by tools/misc/gen_metafiles.py: '
    'do not edit.\n# Figures: gpunet_mm/models/tiers.py (published) and '
    'gpunet_mm/hub/data/*.jsonl (measured).\n'
)
PAPER = dict(
    Title='Searching the Deployable Convolution Neural Networks for GPUs',
    URL='https://arxiv.org/abs/2205.00841',
)
METAFILE_DIRS = {
    'configs/gpunet': dict(
        collection='GPUNet',
        task='Image Classification',
        dataset='ImageNet-1k',
        metadata={
            'Training Data': 'ImageNet-1k',
            'Architecture': ['Fused-IRB', 'Inverted Residual Block', 'Squeeze-and-Excitation'],
        },
    ),
    'configs/gpunet_det': dict(
        collection='GPUNet-Det',
        task='Object Detection',
        dataset='COCO',
        metadata={'Training Data': 'COCO', 'Architecture': ['GPUNet', 'FPN']},
    ),
}
BACKEND_NAMES = {'tensorrt': 'TensorRT', 'onnxruntime': 'ONNX Runtime', 'torch': 'PyTorch'}


def _by_config(entries: Sequence[HubEntry]) -> Dict[str, List[HubEntry]]:
    out: Dict[str, List[HubEntry]] = defaultdict(list)
    for e in entries:
        if e.config:
            out[e.config].append(e)
    return out


def _inference_time(e: HubEntry) -> Dict:
    backend = BACKEND_NAMES.get(e.backend, e.backend)
    if e.backend_version:
        backend = f'{backend} {e.backend_version}'
    return {
        'value': e.latency_ms,
        'hardware': e.device,
        'backend': backend,
        'batch size': e.batch,
        'mode': e.precision.upper(),
        'resolution': f'({e.input_shape[0]}, {e.input_shape[1]})',
        'statistic': e.latency_stat,
        'source': e.provenance.summary(),
    }


def _model_item(config: str, spec: Dict, rows: List[HubEntry]) -> Dict:
    stem = osp.splitext(osp.basename(config))[0]
    name = re.sub(r'_\d+xb\d+', '', stem) if spec['task'] == 'Image Classification' else stem
    item: Dict = {'Name': name, 'In Collection': spec['collection']}
    meta: Dict = {}
    ref = rows[0] if rows else None
    if ref is not None:
        if ref.flops is not None:
            meta['FLOPs'] = ref.flops
        if ref.params is not None:
            meta['Parameters'] = ref.params
        if ref.task == 'classification':
            meta['Input Resolution'] = ref.input_shape[0]
        meta['inference time (ms/im)'] = [
            _inference_time(e)
            for e in sorted(
                rows,
                key=lambda e: (e.provenance.kind != 'paper', e.device, e.backend, e.latency_ms),
            )
        ]
    if meta:
        item['Metadata'] = meta
    with_metric = [e for e in rows if e.metric is not None]
    if with_metric:
        e = with_metric[0]
        key = 'Top 1 Accuracy' if e.metric_name == 'top1' else 'box AP'
        item['Results'] = [
            {'Task': spec['task'], 'Dataset': spec['dataset'], 'Metrics': {key: e.metric}}
        ]
    item['Config'] = config
    weights = next((e.checkpoint for e in rows if e.checkpoint), None)
    if weights:
        item['Weights'] = weights
    return item


def metafile_dict(folder: str, entries: Optional[Sequence[HubEntry]] = None) -> Dict:
    """The metafile of a config folder: every model config in it, with its hub rows."""
    spec = METAFILE_DIRS[folder]
    entries = shipped_entries() if entries is None else entries
    rows = _by_config(entries)
    configs = sorted(
        osp.relpath(p, repo_root()).replace(osp.sep, '/')
        for p in glob.glob(osp.join(repo_root(), folder, '*.py'))
    )
    collection = {
        'Name': spec['collection'],
        'Metadata': spec['metadata'],
        'Paper': PAPER,
        'README': 'docs/model_zoo.md',
    }
    return {
        'Collections': [collection],
        'Models': [_model_item(c, spec, rows.get(c, [])) for c in configs],
    }


def render_metafiles(entries: Optional[Sequence[HubEntry]] = None) -> Dict[str, str]:
    """``{repo-relative path: text}`` for every metafile and ``model-index.yml``."""
    out = {}
    for folder in METAFILE_DIRS:
        d = metafile_dict(folder, entries)
        note = (
            '# Weights: convert the NGC release checkpoints with '
            'tools/model_converters/gpunet_release_to_mm.py (docs/model_zoo.md).\n'
            if folder == 'configs/gpunet'
            else '# Weights and COCO results: none yet (no COCO training here).\n'
        )
        out[f'{folder}/metafile.yml'] = (
            HEADER + note + yaml.safe_dump(d, sort_keys=False, allow_unicode=True, width=100)
        )
    index = {'Import': [f'{folder}/metafile.yml' for folder in METAFILE_DIRS]}
    out['model-index.yml'] = HEADER + yaml.safe_dump(index, sort_keys=False)
    return out


# --------------------------------------------------------------------------- docs page
MODEL_ZOO_PAGE = 'docs/model_zoo.md'
_BLOCK = re.compile(
    r'(<!-- BEGIN hub:(?P<name>[\w-]+) -->\n)(.*?)(<!-- END hub:(?P=name) -->)', re.S
)


def _ms(v: float) -> str:
    return f'{v:.2f} ms'


def table_tiers(entries: Sequence[HubEntry]) -> str:
    """The published tiers: input, params, GMACs, top-1 and every published latency."""
    keys = list(PUBLISHED_TARGETS)
    heads = [
        f'{t["device"]} {BACKEND_NAMES[t["backend"]]}'
        + (f' {t["backend_version"]}' if t['backend_version'] else '')
        + f' {t["precision"].upper()} bs{t["batch"]}'
        for t in PUBLISHED_TARGETS.values()
    ]
    lines = [
        '| tier | name | family | input | params | GMACs | ImageNet top-1 | '
        + ' | '.join(heads)
        + ' | config |',
        '|' + '---|' * (8 + len(heads)),
    ]
    for i, arch in enumerate(TIERS):
        m = arch.meta
        config = next((e.config for e in entries if e.name == arch.name and e.config), None)
        lat = ' | '.join(_ms(m['latency_ms'][k]) for k in keys)
        lines.append(
            f'| {i} | {arch.name} | {arch.family} | {arch.resolution} | '
            f'{m["params"] / 1e6:.2f} M | {m["flops"] / 1e9:.2f} | {m["top1"]} | {lat} | '
            f'{_config_link(config)} |'
        )
    return '\n'.join(lines)


def _config_link(config: Optional[str]) -> str:
    if not config:
        return '-'
    return f'`{config}`'


def table_feature_levels() -> str:
    """Channels of each feature level (stride ``2**(i+1)``), from the arch specs."""
    n = max(len(a.level_channels()) for a in TIERS)
    heads = [f'level {i} (s{2 ** (i + 1)})' for i in range(n)]
    lines = ['| tier | ' + ' | '.join(heads) + ' | tail |', '|' + '---|' * (n + 2)]
    for a in TIERS:
        ch = a.level_channels()
        cells = [str(c) for c in ch] + ['-'] * (n - len(ch))
        lines.append(f'| {a.name} | ' + ' | '.join(cells) + f' | {a.tail_channels[0]} |')
    return '\n'.join(lines)


#: the machine's 1-minute load average when a measured row was written (its own column)
LOAD_KEY = 'load_avg_1m'


def table_measured(entries: Sequence[HubEntry], task: str) -> str:
    """Measured rows of one task, grouped by device."""
    rows = [e for e in entries if e.provenance.kind == 'measured' and e.task == task]
    if not rows:
        return '_No measured rows yet: run `benchmarks/benchmark_hub.py`._'
    order = {n: i for i, n in enumerate(TIER_NAMES)}
    rows.sort(key=lambda e: (e.device, e.backend, order.get(e.tier or '', 99), e.name))
    acc = 'ImageNet top-1' if task == 'classification' else 'backbone ImageNet top-1'
    lines = [
        f'| model | input | device | backend | precision | batch | median latency | p90 | {acc} '
        '| params | GMACs | measured | load avg |',
        '|' + '---|' * 13,
    ]
    for e in rows:
        d = e.latency_detail
        p90 = _ms(d['p90_ms']) if 'p90_ms' in d else '-'
        top1 = e.metric if task == 'classification' else e.backbone_top1
        backend = BACKEND_NAMES.get(e.backend, e.backend)
        if e.backend_version:
            backend += f' {e.backend_version}'
        lines.append(
            f'| {e.name} | {e.input_shape[0]}x{e.input_shape[1]} | {e.device} | {backend} | '
            f'{e.precision} | {e.batch} | {_ms(e.latency_ms)} | {p90} | '
            f'{"-" if top1 is None else top1} | '
            f'{"-" if e.params is None else f"{e.params / 1e6:.2f} M"} | '
            f'{"-" if e.flops is None else f"{e.flops / 1e9:.2f}"} | {e.provenance.date} | '
            f'{e.provenance.environment.get(LOAD_KEY, "-")} |'
        )
    envs = sorted(
        {
            ', '.join(
                f'{k} {v}' for k, v in sorted(e.provenance.environment.items()) if k != LOAD_KEY
            )
            for e in rows
        }
    )
    tools = sorted({e.provenance.tool for e in rows if e.provenance.tool})
    lines.append('')
    lines.append(
        f'Measured by {", ".join(f"`{t}`" for t in tools)}; environment: ' + '; '.join(envs) + '.'
    )
    return '\n'.join(lines)


def render_blocks(entries: Optional[Sequence[HubEntry]] = None) -> Dict[str, str]:
    entries = shipped_entries() if entries is None else entries
    return {
        'tiers': table_tiers(entries),
        'feature-levels': table_feature_levels(),
        'measured-cls': table_measured(entries, 'classification'),
        'measured-det': table_measured(entries, 'detection'),
    }


def render_page(text: str, blocks: Dict[str, str]) -> str:
    """``text`` with every ``<!-- BEGIN hub:NAME -->...<!-- END hub:NAME -->`` block filled."""
    unknown = sorted({m.group('name') for m in _BLOCK.finditer(text)} - set(blocks))
    if unknown:
        raise ValueError(f'unknown generated blocks {unknown}; known: {sorted(blocks)}')

    def fill(m: re.Match) -> str:
        return f'{m.group(1)}{blocks[m.group("name")]}\n{m.group(4)}'

    return _BLOCK.sub(fill, text)


def render_model_zoo(path: Optional[str] = None) -> str:
    path = path or osp.join(repo_root(), MODEL_ZOO_PAGE)
    with open(path, encoding='utf-8') as f:
        return render_page(f.read(), render_blocks())


__all__ = [
    'MODEL_ZOO_PAGE',
    'metafile_dict',
    'render_blocks',
    'render_metafiles',
    'render_model_zoo',
    'render_page',
]
