"""Checkpoints fetched by URL or any other mmengine scheme load weights-only, like local ones.

No network: each crafted pickle is put where the scheme's loader finds it without
downloading (torch's hub download cache for URLs, mmengine's home for ``open-mmlab://``
local entries, a stand-in storage client for ``s3://`` and ``pavi://``). Each would
``touch`` a marker file when fully unpickled; the marker must never appear.
"""

import json
import os
import sys
import threading
import types
from urllib.parse import urlparse

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_checkpoint

import gpunet_mm  # noqa: F401  (installs the loaders)
from gpunet_mm.safe_checkpoint import UntrustedCheckpointError, trusted_checkpoints

from .crafted_pickles import marker_path, write_getattr_gadget, write_raw, write_zip


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """torch's download cache in tmp (``torch.hub.get_dir()``), and mmengine's home."""
    d = tmp_path / 'torch_hub'
    (d / 'checkpoints').mkdir(parents=True)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(d))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine_home'))
    return d


def cached(hub_dir, url: str) -> str:
    """Where ``torch.hub.load_state_dict_from_url`` looks before downloading ``url``."""
    return str(hub_dir / 'checkpoints' / os.path.basename(urlparse(url).path))


def url_of(scheme_path: str) -> str:
    from mmengine.runner.checkpoint import (
        get_external_models,
        get_mmcls_models,
        get_torchvision_models,
    )

    scheme, name = scheme_path.split('://')
    if scheme in ('http', 'https'):
        return scheme_path
    table = {
        'torchvision': get_torchvision_models,
        'modelzoo': get_torchvision_models,
        'open-mmlab': get_external_models,
        'openmmlab': get_external_models,
        'mmcls': get_mmcls_models,
    }[scheme]()
    return table[name]


URL_SCHEMES = [
    'https://download.example.invalid/gpunet/gpunet_0_in1k.pth',
    'http://download.example.invalid/gpunet/gpunet_0_coco.pth',
    'torchvision://resnet18',
    'modelzoo://resnet18',
    'open-mmlab://resnet50_v1c',
    'openmmlab://resnet50_v1c',
    'mmcls://resnet50',
]


@pytest.mark.parametrize('path', URL_SCHEMES)
@pytest.mark.parametrize('writer', [write_zip, write_raw], ids=['zip', 'raw'])
def test_crafted_pickle_in_the_download_cache_runs_nothing(hub_dir, tmp_path, path, writer):
    marker = marker_path(tmp_path)
    writer(cached(hub_dir, url_of(path)), marker)
    with pytest.raises(UntrustedCheckpointError) as e:
        _load_checkpoint(path, map_location='cpu')
    msg = str(e.value)
    assert path in msg and 'trust_checkpoint=True' in msg
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint(torch.nn.Linear(2, 2), path, map_location='cpu')
    assert not os.path.exists(marker)
    assert torch.load is torch.serialization.load  # the guard is gone after the load


def test_getattr_gadget_by_url_runs_nothing(hub_dir, tmp_path):
    marker = marker_path(tmp_path)
    url = 'https://download.example.invalid/x/gadget.pth'
    write_getattr_gadget(cached(hub_dir, url), marker)
    with pytest.raises(UntrustedCheckpointError, match='getattr'):
        _load_checkpoint(url)
    assert not os.path.exists(marker)


def test_open_mmlab_local_entry_runs_nothing(hub_dir, tmp_path):
    """``open-mmlab://NAME`` whose table entry is a file under mmengine's home."""
    marker = marker_path(tmp_path)
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    (home / 'open_mmlab.json').write_text(json.dumps({'gpunet_local': 'local/evil.pth'}))
    (home / 'local').mkdir()
    write_zip(str(home / 'local' / 'evil.pth'), marker)
    with pytest.raises(UntrustedCheckpointError, match='open-mmlab://gpunet_local'):
        _load_checkpoint('open-mmlab://gpunet_local')
    assert not os.path.exists(marker)


def test_file_backend_bytes_run_nothing(tmp_path, monkeypatch):
    """``s3://`` / ``petrel://``: mmengine unpickles the backend's bytes from a buffer."""
    import mmengine.runner.checkpoint as mm_ckpt

    marker = marker_path(tmp_path)
    data = open(write_zip(str(tmp_path / 'evil.pth'), marker), 'rb').read()

    class Storage:  # stands in for the petrel client: the bytes of any key
        def get(self, filepath):
            return data

    monkeypatch.setattr(mm_ckpt, 'get_file_backend', lambda *a, **k: Storage())
    for path in ('s3://bucket/evil.pth', 'petrel://bucket/evil.pth', 'openmmlab:s3://b/e.pth'):
        with pytest.raises(UntrustedCheckpointError, match=path.replace('.', r'\.')):
            _load_checkpoint(path)
    assert not os.path.exists(marker)


def test_pavi_download_runs_nothing(tmp_path, monkeypatch):
    marker = marker_path(tmp_path)
    src = write_raw(str(tmp_path / 'evil.pth'), marker)

    class Model:
        name = 'evil.pth'

        def download(self, dst):
            with open(src, 'rb') as fi, open(dst, 'wb') as fo:
                fo.write(fi.read())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(UntrustedCheckpointError, match='pavi://models/evil'):
        _load_checkpoint('pavi://models/evil')
    assert not os.path.exists(marker)


def test_a_scheme_registered_later_is_guarded_too(tmp_path):
    marker = marker_path(tmp_path)
    src = write_zip(str(tmp_path / 'evil.pth'), marker)

    def load_from_mystore(filename, map_location=None):
        return torch.load(src, map_location=map_location, weights_only=False)

    CheckpointLoader.register_scheme('mystore://', load_from_mystore, force=True)
    try:
        with pytest.raises(UntrustedCheckpointError, match='mystore://x'):
            _load_checkpoint('mystore://x')
    finally:
        CheckpointLoader._schemes.pop('mystore://')
    assert not os.path.exists(marker)


class Odd:
    """Outside the allow-list, harmless: what the explicit opt-in is for."""


def test_trusted_url_loads_with_the_same_opt_in(hub_dir, tmp_path):
    """The explicit opt-in is the only way through, for URLs exactly as for files."""
    url = 'https://download.example.invalid/x/odd.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': {'odd': Odd()}}, cached(hub_dir, url))
    with pytest.raises(UntrustedCheckpointError, match='Odd'):
        _load_checkpoint(url)
    with trusted_checkpoints():
        assert isinstance(_load_checkpoint(url)['meta']['odd'], Odd)


def test_plain_weights_by_url_load(hub_dir):
    url = 'https://download.example.invalid/x/plain.pth'
    torch.save(
        {'state_dict': {'weight': torch.ones(2, 2), 'bias': torch.zeros(2)}}, cached(hub_dir, url)
    )
    lin = torch.nn.Linear(2, 2)
    load_checkpoint(lin, url, map_location='cpu')
    assert torch.equal(lin.weight, torch.ones(2, 2))


def test_other_threads_keep_their_torch_load(tmp_path):
    """While one thread loads a URL, another thread's own torch.load is not overruled."""
    from gpunet_mm.safe_checkpoint import weights_only_unpickling

    path = str(tmp_path / 'mine.pth')
    torch.save({'odd': Odd()}, path)
    got = {}
    with weights_only_unpickling('https://x/y.pth'):
        t = threading.Thread(target=lambda: got.update(torch.load(path, weights_only=False)))
        t.start()
        t.join()
        with pytest.raises(UntrustedCheckpointError):
            torch.load(path, weights_only=False)
    assert isinstance(got['odd'], Odd)


def test_pretrained_init_cfg_by_url_runs_nothing(hub_dir, tmp_path):
    from gpunet_mm.models.backbones.gpunet import GPUNet

    marker = marker_path(tmp_path)
    url = 'https://download.example.invalid/gpunet/gpunet0_in1k.pth'
    write_zip(cached(hub_dir, url), marker)
    net = GPUNet(
        tier='GPUNet-0',
        out_indices=(2, 3, 4),
        init_cfg=dict(type='Pretrained', checkpoint=url, prefix='backbone.'),
    )
    with pytest.raises(UntrustedCheckpointError, match=url.replace('.', r'\.')):
        net.init_weights()
    assert not os.path.exists(marker)


def test_load_from_url_in_the_runner_runs_nothing(hub_dir, tmp_path):
    """``load_from='https://...'``: what tools/test.py and tools/train.py do."""
    from gpunet_mm.apis import make_runner
    from gpunet_mm.datasets import generate_detection_demo

    from .test_safe_checkpoint import demo_cfg

    root = tmp_path / 'demo'
    generate_detection_demo(str(root), num_train=2, num_val=1, image_size=64, seed=1)
    marker = marker_path(tmp_path)
    url = 'https://download.example.invalid/gpunet/retinanet_gpunet0.pth'
    write_zip(cached(hub_dir, url), marker)
    cfg = demo_cfg(str(root) + '/', str(tmp_path / 'wd'))
    cfg.load_from = url
    with pytest.raises(UntrustedCheckpointError, match='trust_checkpoint=True'):
        make_runner(cfg).test()
    assert not os.path.exists(marker)


def test_mmengine_pretrained_init_by_url_runs_nothing(hub_dir, tmp_path):
    """``init_cfg=dict(type='Pretrained', checkpoint='torchvision://...')`` of any module
    (mmdet's ResNet, a neck): mmengine's PretrainedInit, the way mmdet configs get weights."""
    from mmengine.model.weight_init import PretrainedInit

    marker = marker_path(tmp_path)
    write_zip(cached(hub_dir, url_of('torchvision://resnet18')), marker)
    with pytest.raises(UntrustedCheckpointError, match='torchvision://resnet18'):
        PretrainedInit(checkpoint='torchvision://resnet18')(torch.nn.Linear(2, 2))
    with pytest.raises(UntrustedCheckpointError):
        PretrainedInit(checkpoint='torchvision://resnet18', prefix='backbone.')(
            torch.nn.Linear(2, 2)
        )
    assert not os.path.exists(marker)
