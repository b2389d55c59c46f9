"""The user hub file: entries persist and merge, conflicts refuse, writes survive crashes."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from gpunet_mm import hub
from gpunet_mm.hub import HubEntry, HubFileError, ModelHub, NameConflictError, Provenance
from gpunet_mm.hub.shipped import shipped_entries

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measured(name='my-gpunet-0', latency=0.5, device='T4', tier='GPUNet-0', **kw):
    return HubEntry(
        name=name,
        task='classification',
        input_shape=(320, 320),
        batch=1,
        device=device,
        backend='tensorrt',
        backend_version='10.13',
        precision='fp16',
        latency_ms=latency,
        latency_stat='median GPU compute time (trtexec)',
        metric=78.9,
        metric_dataset='ImageNet-1k val',
        tier=tier,
        provenance=Provenance(
            kind='measured',
            tool='trtexec',
            date='2026-11-25',
            environment={'gpu': 'Tesla T4', 'driver': '550'},
        ),
        **kw,
    )


def test_entries_persist_and_merge_with_shipped(hub_file):
    n_shipped = len(shipped_entries())
    hub.add(measured(), path=hub_file)
    hub.add(measured(name='other', latency=0.7, tier='GPUNet-1'), path=hub_file)
    fresh = ModelHub(hub_file)  # a new process would see the same
    assert len(fresh.user_entries()) == 2
    assert len(fresh.entries()) == n_shipped + 2
    assert 'T4' in fresh.devices()
    assert hub.query(device='t4', latency_ms=0.6, path=hub_file).name == 'my-gpunet-0'
    got = hub.get('MY-GPUNET-0', path=hub_file)[0]
    assert got.to_dict() == measured().to_dict()
    assert got.provenance.environment == {'gpu': 'Tesla T4', 'driver': '550'}


def test_same_model_new_target_is_not_a_conflict(hub_file):
    # GPUNet-0 is shipped; a T4 row of the same network adds to it
    hub.add(measured(name='GPUNet-0'), path=hub_file)
    rows = hub.get('GPUNet-0', path=hub_file)
    assert {e.device for e in rows} >= {'A100', 'V100', 'T4'}


def test_conflicts_refuse_unless_replace(hub_file):
    hub.add(measured(), path=hub_file)
    hub.add(measured(), path=hub_file)  # identical row again: no-op
    assert len(ModelHub(hub_file).user_entries()) == 1
    with pytest.raises(NameConflictError, match=r'already has a measured row for T4 .*0\.5 ms'):
        hub.add(measured(latency=0.45), path=hub_file)
    hub.add(measured(latency=0.45), replace=True, path=hub_file)
    assert [e.latency_ms for e in ModelHub(hub_file).user_entries()] == [0.45]
    # the same name for another network
    with pytest.raises(NameConflictError, match='already names another network'):
        hub.add(measured(device='L4', tier='GPUNet-2'), path=hub_file)
    hub.add(measured(device='L4', tier='GPUNet-2'), replace=True, path=hub_file)
    rows = ModelHub(hub_file).user_entries()
    assert [(e.device, e.tier) for e in rows] == [('L4', 'GPUNet-2')]
    # a shipped name never goes to another network
    with pytest.raises(NameConflictError, match="'GPUNet-1' is a shipped model"):
        hub.add(measured(name='GPUNet-1', tier='GPUNet-2'), replace=True, path=hub_file)


def test_replace_shadows_a_shipped_row(hub_file):
    paper = [e for e in shipped_entries() if e.name == 'GPUNet-0' and e.device == 'V100'][0]
    d = paper.to_dict()
    d['latency_ms'] = 0.61
    with pytest.raises(NameConflictError):
        hub.add(d, path=hub_file)
    hub.add(d, replace=True, path=hub_file)
    rows = [e for e in hub.get('GPUNet-0', path=hub_file) if e.device == 'V100']
    assert [e.latency_ms for e in rows] == [0.61]


def test_malformed_file_reported_with_line_and_never_overwritten(hub_file):
    hub.add(measured(), path=hub_file)
    with open(hub_file, 'a') as f:
        f.write('{"name": "broken", \n')
    before = open(hub_file).read()
    with pytest.raises(HubFileError) as err:
        hub.add(measured(name='x', tier='GPUNet-1'), path=hub_file)
    assert f'{hub_file}:3:' in str(err.value) and 'not valid JSON' in str(err.value)
    with pytest.raises(HubFileError, match=':3:'):
        hub.list_models(path=hub_file)
    assert open(hub_file).read() == before


def test_invalid_entry_reported_with_line(hub_file):
    hub.add(measured(), path=hub_file)
    row = measured(name='b', tier='GPUNet-1').to_dict()
    row['latency_ms'] = -1
    with open(hub_file, 'a') as f:
        f.write(json.dumps(row) + '\n')
    with pytest.raises(HubFileError, match=r':3: .*latency_ms must be a positive number'):
        ModelHub(hub_file).entries()
    row = measured(name='c', tier='GPUNet-1').to_dict()
    row['speed'] = 1
    with open(hub_file, 'w') as f:
        f.write(json.dumps(row) + '\n')
    with pytest.raises(
        HubFileError, match=r":1: hub entry 'c': speed: unknown key.*allowed keys: name, task"
    ):
        ModelHub(hub_file).entries()


def test_provenance_fields_are_required():
    with pytest.raises(hub.HubError, match='missing: tool, date, environment'):
        HubEntry.from_dict(dict(measured().to_dict(), provenance={'kind': 'measured'}))
    with pytest.raises(hub.HubError, match='needs work_dir, trial_id, journal_hash'):
        HubEntry.from_dict(dict(measured().to_dict(), provenance={'kind': 'search'}))


def test_crash_in_replace_leaves_old_file(hub_file, monkeypatch):
    hub.add(measured(), path=hub_file)
    before = open(hub_file).read()

    def boom(src, dst):
        raise OSError('disk went away')

    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(OSError, match='disk went away'):
        hub.add(measured(name='second', tier='GPUNet-1'), path=hub_file)
    monkeypatch.undo()
    assert open(hub_file).read() == before
    leftovers = [n for n in os.listdir(os.path.dirname(hub_file)) if n.endswith('.tmp')]
    assert leftovers == []


def test_process_killed_mid_write_leaves_old_file(hub_file):
    hub.add(measured(), path=hub_file)
    before = open(hub_file).read()
    # the child dies (SIGKILL) after writing the new content to the temp file, before rename
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {ROOT!r})
        from gpunet_mm import hub
        from tests.hub.test_store import measured
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        hub.add(measured(name='second', tier='GPUNet-1'), path={hub_file!r})
        """
    )
    proc = subprocess.run([sys.executable, '-c', child], cwd=ROOT, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert open(hub_file).read() == before
    # the hub still works: the stray temp file is ignored, the next add lands
    assert [e.name for e in ModelHub(hub_file).user_entries()] == ['my-gpunet-0']
    hub.add(measured(name='third', tier='GPUNet-1'), path=hub_file)
    assert [e.name for e in ModelHub(hub_file).user_entries()] == ['my-gpunet-0', 'third']


def test_default_path_env_and_explicit_path(tmp_path, monkeypatch):
    env_file = tmp_path / 'env_hub.jsonl'
    monkeypatch.setenv('GPUNET_MM_HUB', str(env_file))
    assert hub.default_hub_file() == str(env_file)
    hub.add(measured())
    assert env_file.exists()
    other = tmp_path / 'explicit.jsonl'
    hub.add(measured(name='x', tier='GPUNet-1'), path=str(other))
    assert [e.name for e in ModelHub(str(other)).user_entries()] == ['x']
    assert [e.name for e in ModelHub().user_entries()] == ['my-gpunet-0']
    monkeypatch.delenv('GPUNET_MM_HUB')
    assert hub.default_hub_file() == os.path.expanduser('~/.cache/gpunet_mm/hub.jsonl')


def test_concurrent_adds_from_two_processes_all_land(hub_file):
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        from gpunet_mm import hub
        from tests.hub.test_store import measured
        for i in range(6):
            hub.add(measured(name=f'p{{sys.argv[1]}}-{{i}}', tier='GPUNet-1'), path={hub_file!r})
        """
    )
    procs = [
        subprocess.Popen([sys.executable, '-c', child, str(k)], cwd=ROOT, stderr=subprocess.PIPE)
        for k in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    names = sorted(e.name for e in ModelHub(hub_file).user_entries())
    assert names == sorted(f'p{k}-{i}' for k in (0, 1) for i in range(6))


# ------------------------------------------------------------------ issue 20: checked on read
def _write_rows(path, *rows):
    with open(path, 'w') as f:
        f.write('{"gpunet_mm_hub": 1}\n')
        for r in rows:
            f.write(json.dumps(r.to_dict()) + '\n')


def test_shipped_name_spoof_is_refused_on_read(hub_file):
    """A hand-written row named GPUNet-0 that is another network never joins its rows."""
    _write_rows(hub_file, measured(name='GPUNet-0', tier='GPUNet-1'))
    with pytest.raises(
        hub.HubError, match=r"hub\.jsonl: row 'GPUNet-0' takes the name of a shipped"
    ):
        ModelHub(hub_file).entries()
    with pytest.raises(hub.HubError, match='shipped'):
        hub.query(device='t4', latency_ms=5, path=hub_file)


def test_one_name_two_networks_or_two_rows_of_one_key_are_refused_on_read(hub_file):
    _write_rows(
        hub_file, measured(name='mine'), measured(name='mine', tier='GPUNet-1', device='A100')
    )
    with pytest.raises(hub.HubError, match="two rows named 'mine' describe different networks"):
        ModelHub(hub_file).entries()
    _write_rows(hub_file, measured(name='mine'), measured(name='mine', latency=0.9))
    with pytest.raises(hub.HubError, match="two rows for 'mine'.*one would silently win"):
        ModelHub(hub_file).entries()
    with pytest.raises(hub.HubError):  # and an add never rewrites such a file
        hub.add(measured(name='other', tier='GPUNet-1'), path=hub_file)


def test_add_writes_through_a_symlinked_hub_file(tmp_path):
    target = tmp_path / 'shared' / 'hub.jsonl'
    target.parent.mkdir()
    link = tmp_path / 'hub.jsonl'
    link.symlink_to(target)
    hub.add(measured(), path=str(link))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert [e.name for e in ModelHub(str(target)).user_entries()] == ['my-gpunet-0']
