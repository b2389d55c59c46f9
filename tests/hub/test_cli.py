"""tools/hub.py: tables, --json, filters, and the error messages for bad input."""

import json
import os
import subprocess
import sys

import pytest

from gpunet_mm.hub import ModelHub
from gpunet_mm.hub.cli import main

from .conftest import NAS_RUN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(capsys, hub_file, *argv):
    code = main(['--hub-file', hub_file, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_query_table(capsys, hub_file):
    code, out, _ = run(
        capsys, hub_file, 'query', '--device', 'A100', '--latency', '1.0', '--task', 'cls'
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == 'most accurate within 1 ms on A100:'
    header, row = lines[1].split(), lines[3].split()
    assert header[:3] == ['name', 'task', 'device']
    assert row[:3] == ['GPUNet-D1', 'cls', 'A100'] and '0.94' in row and 'paper' in row
    assert 'ranked by top1' in out


def test_query_json(capsys, hub_file):
    code, out, _ = run(
        capsys,
        hub_file,
        'query',
        '--device',
        'V100',
        '--latency',
        '0.9',
        '--task',
        'classification',
        '--json',
    )
    d = json.loads(out)
    assert code == 0 and d['name'] == 'GPUNet-1' and d['latency_ms'] == 0.82
    assert d['provenance'] == {'kind': 'paper', 'source': 'GPUNet release (CVPR 2022)'}
    assert d['ranked_by'] == 'top1' and d['config'] == 'configs/gpunet/gpunet-1_8xb192_in1k.py'


def test_list_condition_and_sort(capsys, hub_file):
    code, out, _ = run(
        capsys,
        hub_file,
        'list',
        '--condition',
        'latency_ms<=1.0,top1>=80',
        '--backend',
        'tensorrt',
        '--sort',
        'top1',
        'latency_ms',
        '--descending',
        '--json',
    )
    rows = json.loads(out)
    assert code == 0
    assert all(r['latency_ms'] <= 1.0 and r['metric'] >= 80 for r in rows)
    tops = [r['metric'] for r in rows]
    assert tops == sorted(tops, reverse=True) and tops[0] == 82.5
    assert len(rows) == 7  # A100: P0 1 P1 D1; V100: P0 1 P1


def test_pareto_and_show(capsys, hub_file, tmp_path):
    code, out, _ = run(capsys, hub_file, 'pareto', '--device', 'V100', '--task', 'cls')
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert code == 0 and names == ['GPUNet-P0', 'GPUNet-1', 'GPUNet-P1', 'GPUNet-D1', 'GPUNet-D2']
    cfg = tmp_path / 'd1.py'
    code, out, _ = run(capsys, hub_file, 'show', 'gpunet-d1', '--config-out', str(cfg))
    assert code == 0 and out.startswith('GPUNet-D1  (classification)')
    assert 'provenance paper: GPUNet release (CVPR 2022)' in out
    assert 'knowledge distillation' in out
    assert "tier='GPUNet-D1'" in cfg.read_text()


@pytest.mark.parametrize(
    'argv, message',
    [
        (['query', '--device', 'T4', '--latency', '1'], "device: got 'T4'; known devices: "),
        (
            ['query', '--device', 'V100', '--latency', '0.5', '--task', 'cls'],
            'below the fastest matching entry: GPUNet-0 at 0.63 ms',
        ),
        (['list', '--condition', 'fps>=30'], "unknown field 'fps'; allowed: latency_ms, metric"),
        (['list', '--condition', 'top1=>80'], "unknown operator '=>'; allowed: <= >= == != < >"),
        (['show', 'GPUNet-3'], "no model named 'GPUNet-3' in the hub; did you mean"),
        (['import', '/nonexistent/run'], 'no results.json in /nonexistent/run'),
    ],
)
def test_errors(capsys, hub_file, argv, message):
    code, out, err = run(capsys, hub_file, *argv)
    assert code == 1 and out == ''
    assert err.startswith('error: ') and message in err, err


def test_add_conflict_needs_replace(capsys, hub_file):
    base = [
        'add',
        '--name',
        'gpunet-0-t4',
        '--task',
        'cls',
        '--tier',
        'GPUNet-0',
        '--device',
        'T4',
        '--backend',
        'tensorrt',
        '--precision',
        'fp16',
        '--shape',
        '320',
        '320',
        '--metric',
        '78.9',
        '--tool',
        'trtexec',
        '--env',
        'gpu=Tesla T4',
        '--date',
        '2026-11-25',
    ]
    code, out, _ = run(capsys, hub_file, *base, '--latency', '0.9')
    assert code == 0 and f'1 row(s) in {hub_file}' in out
    code, _, err = run(capsys, hub_file, *base, '--latency', '0.8')
    assert code == 1 and 'pass replace=True (--replace)' in err
    assert [e.latency_ms for e in ModelHub(hub_file).user_entries()] == [0.9]
    code, _, _ = run(capsys, hub_file, *base, '--latency', '0.8', '--replace')
    assert code == 0 and [e.latency_ms for e in ModelHub(hub_file).user_entries()] == [0.8]
    code, _, err = run(capsys, hub_file, 'add', '--name', 'x', '--task', 'cls')
    assert code == 1 and 'missing --device, --backend, --shape, --latency' in err


def test_add_from_json_and_import(capsys, hub_file, tmp_path):
    code, out, _ = run(
        capsys, hub_file, 'import', NAS_RUN, '--pareto', '--device', 'cpu-amd-epyc-7b13', '--json'
    )
    d = json.loads(out)
    assert code == 0 and len(d['added']) == 3 and d['hub_file'] == hub_file
    rows = tmp_path / 'rows.jsonl'
    row = dict(d['added'][0], name='copied', device='L4')
    rows.write_text('{"gpunet_mm_hub": 1}\n' + json.dumps(row) + '\n')
    code, out, _ = run(capsys, hub_file, 'add', '--from-json', str(rows))
    assert code == 0
    code, out, _ = run(
        capsys,
        hub_file,
        'query',
        '--device',
        'cpu',
        '--latency',
        '80',
        '--task',
        'det',
        '--provenance',
        'search',
    )
    assert code == 0 and out.splitlines()[3].split()[0] == 'nas_det_demo-trial7'


def test_script_runs(hub_file):
    # the shipped CPU rows answer a detection query on any machine
    fastest = min(e.latency_ms for e in ModelHub(hub_file).list_models(task='det', device='cpu'))
    budget = str(round(fastest * 2, 1))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'hub.py'), '--hub-file', hub_file]
        + ['query', '--device', 'cpu', '--latency', budget, '--task', 'det']
        + ['--by-backbone-top1'],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert f'most accurate within {float(budget):g} ms on cpu:' in proc.stdout
    assert 'RetinaNet-GPUNet-' in proc.stdout and 'cpu-' in proc.stdout
    assert 'ranked by backbone_top1' in proc.stdout
