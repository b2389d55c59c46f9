"""The logic behind ``tools/hub.py`` (kept importable so tests call it in-process).

    tools/hub.py list   [--task cls] [--device A100] [--condition 'top1>=80'] [--sort latency_ms]
    tools/hub.py query  [--device A100] --latency 1.0 --task cls   (default: this machine)
    tools/hub.py pareto --device V100 --task cls
    tools/hub.py show   GPUNet-D1 [--config-out my_config.py]
    tools/hub.py add    --name my-net --task cls --device A100 ... | --from-json rows.jsonl
    tools/hub.py import work_dirs/nas_det [--pareto]
    tools/hub.py remove NAME [--device D] [--backend B] [--provenance search]

Tables by default, ``--json`` for machine-readable output; ``--hub-file`` names the user hub
file (default ``$GPUNET_MM_HUB`` or ``~/.cache/gpunet_mm/hub.jsonl``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

from .conditions import FIELDS, sort_entries
from .entry import CAVEATS, HubEntry, HubError, Provenance
from .hub import ModelHub, default_hub_file


def _fmt_num(v: Optional[float], fmt: str) -> str:
    return '-' if v is None else format(v, fmt)


def metric_text(e: HubEntry) -> str:
    if e.metric is not None:
        return f'{e.metric:g} {e.metric_name}'
    if e.backbone_top1 is not None:
        return f'({e.backbone_top1:g} backbone top1)*'
    return '-'


def format_table(entries: Sequence[HubEntry]) -> str:
    """One line per row; a ``*`` marks a detector scored by its backbone's top-1, and a
    ``caveats`` column (with what each means below the table) marks simulated and toy-data
    rows wherever they are shown."""
    cols = [
        ('name', lambda e: e.name),
        ('task', lambda e: 'cls' if e.task == 'classification' else 'det'),
        ('device', lambda e: e.device),
        ('backend', lambda e: e.backend + (f' {e.backend_version}' if e.backend_version else '')),
        ('prec', lambda e: e.precision),
        ('bs', lambda e: str(e.batch)),
        ('input', lambda e: f'{e.input_shape[0]}x{e.input_shape[1]}'),
        ('latency', lambda e: f'{e.latency_ms:.3g} ms'),
        ('accuracy', metric_text),
        ('params', lambda e: '-' if e.params is None else f'{e.params / 1e6:.2f}M'),
        ('GFLOPs', lambda e: _fmt_num(None if e.flops is None else e.flops / 1e9, '.2f')),
        ('source', lambda e: e.provenance.kind),
    ]
    caveats = sorted({c for e in entries for c in e.caveats})
    if caveats:
        cols.append(('caveats', lambda e: ','.join(c.upper() for c in e.caveats)))
    rows = [[f(e) for _, f in cols] for e in entries]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, (h, _) in enumerate(cols)]
    line = '  '.join(h.ljust(w) for (h, _), w in zip(cols, widths)).rstrip()
    out = [line, '-' * len(line)]
    out += ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if any(e.metric is None and e.backbone_top1 is not None for e in entries):
        out.append("* no task metric measured: ranked by the backbone's published ImageNet top-1")
    out += [f'{c.upper()}: {CAVEATS[c].split(": ", 1)[1]}' for c in caveats]
    return '\n'.join(out)


def format_entry(e: HubEntry) -> str:
    """Every field of a row, with where its numbers come from."""
    p = e.provenance
    lines = [
        f'{e.name}  ({e.task}{", " + e.detector if e.detector else ""})',
        f'  target     {e.target}, input {e.input_shape[0]}x{e.input_shape[1]}',
        f'  latency    {e.latency_ms:g} ms ({e.latency_stat})',
        f'  accuracy   {metric_text(e)}'
        + (f' on {e.metric_dataset}' if e.metric_dataset else '')
        + (f', {e.metric_schedule}' if e.metric_schedule else '')
        + (f' [source: {e.metric_source}]' if e.metric_source else ''),
        f'  params     {_fmt_num(None if e.params is None else e.params / 1e6, ".3f")} M, '
        f'FLOPs (MACs) {_fmt_num(None if e.flops is None else e.flops / 1e9, ".3f")} G',
        f'  network    {"tier " + e.tier if e.tier else "arch"} (arch_hash {e.arch_hash})',
        f'  config     {e.config or "- (tools/hub.py show NAME --config-out FILE makes one)"}',
        f'  checkpoint {e.checkpoint or "-"}'
        + (f' (sha256 {e.checkpoint_hash})' if e.checkpoint_hash else ''),
        '  machine    ' + ', '.join(f'{k}={v}' for k, v in e.machine.items()),
        f'  provenance {p.summary()}',
    ]
    lines += [f'  caveat     {CAVEATS[c]}' for c in e.caveats]
    if p.environment:
        env = ', '.join(f'{k}={v}' for k, v in sorted(p.environment.items()))
        lines.append(f'  env        {env}')
    if p.extra:
        lines.append(f'  extra      {json.dumps(p.extra, sort_keys=True)}')
    if e.notes:
        lines.append(f'  notes      {e.notes}')
    return '\n'.join(lines)


# --------------------------------------------------------------------------- arguments
def _filters(p: argparse.ArgumentParser, query: bool = False) -> None:
    p.add_argument('--task', help='classification (cls) or detection (det)')
    p.add_argument(
        '--device',
        help="this machine's devices when not given; 'cpu' / 'gpu': this machine's CPU / GPU "
        '(another of the kind, said so, when none was measured here); or a device name as '
        'listed (A100, V100, cpu-...)'
        if query
        else "device name as listed (A100, V100, cpu-...); 'cpu' matches every CPU",
    )
    p.add_argument(
        '--include-toy',
        action='store_true',
        help='also rows with caveats: simulated searches, toy (demo) data, unnamed datasets',
    )
    p.add_argument('--backend', help='tensorrt, torch, onnxruntime, ...')
    p.add_argument('--precision', help='fp16, fp32, ...')
    p.add_argument('--batch', type=int)
    p.add_argument('--provenance', choices=('paper', 'measured', 'search'))
    p.add_argument('--detector', help='retinanet, fcos, ...')
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), help='input shape')
    p.add_argument(
        '--condition',
        action='append',
        help=f"e.g. 'latency_ms<=1.0,top1>=80'; fields: {', '.join(FIELDS)}",
    )


def _backbone_top1(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        '--by-backbone-top1',
        action='store_true',
        help="also rank detectors that have no detection metric by their backbone's ImageNet "
        'top-1 (marked *)',
    )


def _output(p: argparse.ArgumentParser) -> None:
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='tools/hub.py',
        description='GPUNet model hub: the most accurate network under your latency budget',
    )
    parser.add_argument(
        '--hub-file', default=None, help=f'user hub file (default: {default_hub_file()})'
    )
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('list', help='rows matching the filters')
    _filters(p)
    p.add_argument('--sort', nargs='+', metavar='FIELD', help='sort by these fields')
    p.add_argument('--descending', action='store_true', help='with --sort: largest first')
    _output(p)

    p = sub.add_parser('query', help='the most accurate row within a latency budget')
    _filters(p, query=True)
    _backbone_top1(p)
    p.add_argument('--latency', type=float, required=True, help='budget in milliseconds')
    p.add_argument('--config-out', help='also write the winner config to this file')
    _output(p)

    p = sub.add_parser('pareto', help='the latency/accuracy front of each target')
    _filters(p)
    _backbone_top1(p)
    _output(p)

    p = sub.add_parser('remove', help='remove rows of one model from the user hub file')
    p.add_argument('name')
    p.add_argument('--device', help="only this device's rows ('cpu': every CPU)")
    p.add_argument('--backend', help='only rows of this backend')
    p.add_argument('--provenance', choices=('paper', 'measured', 'search'))
    _output(p)

    p = sub.add_parser('show', help='every row of one model, with provenance')
    p.add_argument('name')
    p.add_argument('--config-out', help='write a ready mmdet/mmpretrain config here')
    _output(p)

    p = sub.add_parser('add', help='add a row to the user hub file')
    p.add_argument('--from-json', help='a JSON object, list, or JSON Lines file of rows')
    p.add_argument('--name')
    p.add_argument('--task')
    p.add_argument('--device')
    p.add_argument('--backend')
    p.add_argument('--backend-version')
    p.add_argument('--precision', default='fp32')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    p.add_argument('--latency', type=float, help='milliseconds')
    p.add_argument('--latency-stat', default='median', help='what the latency is')
    p.add_argument('--detector')
    p.add_argument('--metric', type=float, help='top-1 or bbox mAP, percent')
    p.add_argument('--metric-dataset')
    p.add_argument('--metric-schedule')
    p.add_argument('--metric-source')
    p.add_argument('--tier', help='a published tier (GPUNet-0 ... GPUNet-D2)')
    p.add_argument('--arch-file', help='JSON file with a GPUNetArch.to_dict()')
    p.add_argument('--params', type=int)
    p.add_argument('--flops', type=int)
    p.add_argument('--config')
    p.add_argument('--checkpoint')
    p.add_argument('--checkpoint-hash')
    p.add_argument('--provenance', default='measured', choices=('paper', 'measured', 'search'))
    p.add_argument('--source', help='paper: the citation')
    p.add_argument('--tool', help='measured: the tool that measured')
    p.add_argument('--date', help='measured: when (default today)')
    p.add_argument('--env', nargs='+', metavar='KEY=VALUE', help='measured: environment')
    p.add_argument('--work-dir', help='search: the run')
    p.add_argument('--trial-id', help='search: the trial')
    p.add_argument('--journal-hash', help='search: the journal hash')
    p.add_argument('--notes')
    p.add_argument('--replace', action='store_true', help='overwrite a conflicting row')
    _output(p)

    p = sub.add_parser('import', help="add a NAS run's winners (WORK_DIR/results.json)")
    p.add_argument('work_dir')
    p.add_argument('--pareto', action='store_true', help='also every Pareto-optimal trial')
    p.add_argument('--device', help="the machine, when the run's target says only cpu/cuda")
    p.add_argument(
        '--allow-simulated', action='store_true', help='import a --simulate run (surrogate metric)'
    )
    p.add_argument('--replace', action='store_true', help='overwrite conflicting rows')
    _output(p)
    return parser


def _filter_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    return dict(
        task=args.task,
        device=args.device,
        backend=args.backend,
        precision=args.precision,
        batch=args.batch,
        provenance=args.provenance,
        detector=args.detector,
        input_shape=tuple(args.shape) if args.shape else None,
        conditions=args.condition,
        include_toy=args.include_toy,
    )


def _entry_from_args(args: argparse.Namespace) -> HubEntry:
    missing = [
        f'--{k.replace("_", "-")}'
        for k in ('name', 'task', 'device', 'backend', 'shape', 'latency')
        if getattr(args, k) is None
    ]
    if missing:
        raise HubError(f'add: missing {", ".join(missing)} (or give --from-json FILE)')
    env: Dict[str, str] = {}
    for item in args.env or []:
        if '=' not in item:
            raise HubError(f'--env: got {item!r}; expected KEY=VALUE')
        k, v = item.split('=', 1)
        env[k] = v
    arch = None
    if args.arch_file:
        with open(args.arch_file, encoding='utf-8') as f:
            arch = json.load(f)
    date = args.date
    if args.provenance == 'measured' and not date:
        date = datetime.date.today().isoformat()
    return HubEntry(
        name=args.name,
        task=args.task,
        device=args.device,
        backend=args.backend,
        backend_version=args.backend_version,
        precision=args.precision,
        batch=args.batch,
        input_shape=tuple(args.shape),
        latency_ms=args.latency,
        latency_stat=args.latency_stat,
        detector=args.detector,
        metric=args.metric,
        metric_dataset=args.metric_dataset,
        metric_schedule=args.metric_schedule,
        metric_source=args.metric_source,
        tier=args.tier,
        arch=arch,
        params=args.params,
        flops=args.flops,
        config=args.config,
        checkpoint=args.checkpoint,
        checkpoint_hash=args.checkpoint_hash,
        notes=args.notes,
        provenance=Provenance(
            kind=args.provenance,
            source=args.source,
            tool=args.tool,
            date=date,
            environment=env,
            work_dir=args.work_dir,
            trial_id=args.trial_id,
            journal_hash=args.journal_hash,
        ),
    )


def _rows_from_json(path: str) -> List[Dict[str, Any]]:
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        data = json.loads(text)
        rows = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise HubError(f'{path}:{lineno}: not valid JSON ({e.msg})') from None
            if not (isinstance(obj, dict) and 'gpunet_mm_hub' in obj):
                rows.append(obj)
    return rows


def _print_entries(entries: Sequence[HubEntry], as_json: bool) -> None:
    if as_json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        print(format_table(entries) if entries else 'no matching entries')


def run(args: argparse.Namespace) -> int:
    hub = ModelHub(args.hub_file)
    if args.command == 'list':
        rows = hub.list_models(**_filter_kwargs(args))
        if args.sort:
            rows = sort_entries(rows, args.sort, args.descending)
        _print_entries(rows, args.json)
    elif args.command == 'query':
        filters = _filter_kwargs(args)
        filters.pop('device')
        ans = hub.answer(
            args.device, args.latency, by_backbone_top1=args.by_backbone_top1, **filters
        )
        e = ans.entry
        if args.config_out:
            hub.get_config(e.name, args.config_out)
        if args.json:
            out = dict(e.to_dict(), ranked_by=e.score_basis, asked_devices=ans.devices)
            print(json.dumps(dict(out, note=ans.note), indent=2))
        else:
            asked = args.device or f'this machine ({", ".join(ans.devices)})'
            print(f'most accurate within {args.latency:g} ms on {asked}:')
            print(format_table([e]))
            print(f'ranked by {e.score_basis}; ties go to lower latency, then fewer params')
            if ans.note:
                print(f'note: {ans.note}')
            if args.config_out:
                print(f'config written to {args.config_out}')
    elif args.command == 'pareto':
        rows = hub.pareto(by_backbone_top1=args.by_backbone_top1, **_filter_kwargs(args))
        _print_entries(rows, args.json)
    elif args.command == 'remove':
        gone = hub.remove(
            args.name, device=args.device, backend=args.backend, provenance=args.provenance
        )
        if args.json:
            print(json.dumps(dict(hub_file=hub.path, removed=[e.to_dict() for e in gone])))
        else:
            print(f'{len(gone)} row(s) removed from {hub.path}:')
            print(format_table(gone))
    elif args.command == 'show':
        rows = hub.get(args.name)
        if args.config_out:
            hub.get_config(args.name, args.config_out)
        if args.json:
            print(json.dumps([e.to_dict() for e in rows], indent=2))
        else:
            print('\n\n'.join(format_entry(e) for e in rows))
            if args.config_out:
                print(f'\nconfig written to {args.config_out}')
    elif args.command == 'add':
        if args.from_json:
            added = hub.add_many(_rows_from_json(args.from_json), replace=args.replace)
        else:
            added = [hub.add(_entry_from_args(args), replace=args.replace)]
        _report_added(hub, added, args.json)
    elif args.command == 'import':
        added = hub.import_search(
            args.work_dir,
            include_pareto=args.pareto,
            replace=args.replace,
            device=args.device,
            allow_simulated=args.allow_simulated,
        )
        _report_added(hub, added, args.json)
    return 0


def _report_added(hub: ModelHub, added: Sequence[HubEntry], as_json: bool) -> None:
    if as_json:
        print(json.dumps(dict(hub_file=hub.path, added=[e.to_dict() for e in added]), indent=2))
        return
    print(f'{len(added)} row(s) in {hub.path}:')
    print(format_table(added))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except HubError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
