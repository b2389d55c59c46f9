"""The release-checkpoint converter, on state dicts written in the release's own naming."""

import subprocess
import sys

import pytest
import torch

from gpunet_mm.models import get_tier
from gpunet_mm.models.classifiers import build_release_classifier
from gpunet_mm.models.release_checkpoint import extract_state_dict, mm_to_release, release_to_mm


def _conv(sd, name, shape, bias=False):
    sd[f'{name}.weight'] = torch.randn(shape)
    if bias:
        sd[f'{name}.bias'] = torch.randn(shape[0])


def _bn(sd, name, c):
    sd[f'{name}.weight'] = torch.rand(c) + 0.5
    sd[f'{name}.bias'] = torch.randn(c)
    sd[f'{name}.running_mean'] = torch.randn(c)
    sd[f'{name}.running_var'] = torch.rand(c) + 0.5
    sd[f'{name}.num_batches_tracked'] = torch.tensor(7)


def release_state_dict(arch, num_classes=1000):
    """A state dict shaped and named like the release builder's (GPUNet_Builder.get_model)."""
    torch.manual_seed(0)
    sd, layers = {}, arch.layers()
    if arch.family == 'gpunet':
        p = 'network.head: 2.net'
        _conv(sd, f'{p}.0', (layers[0].out_channels, 3, 3, 3))
        _bn(sd, f'{p}.1', layers[0].out_channels)
        for i, ly in enumerate(layers[1:]):
            p = f'network.stage: {ly.stage} layer{i + 3}'
            cin, mid, cout, k, s = (
                ly.in_channels,
                ly.mid_channels,
                ly.out_channels,
                ly.kernel,
                ly.se_channels,
            )
            if ly.type == 'conv':
                _conv(sd, f'{p}.conv', (cout, cin, k, k))
                _bn(sd, f'{p}.bn1', cout)
                continue
            if ly.type == 'irb':
                _conv(sd, f'{p}.conv_pw', (mid, cin, 1, 1))
                _bn(sd, f'{p}.bn1', mid)
                _conv(sd, f'{p}.conv_dw', (mid, 1, k, k))
                _bn(sd, f'{p}.bn2', mid)
                last_bn = 'bn3'
            else:
                _conv(sd, f'{p}.conv_exp', (mid, cin, k, k))
                _bn(sd, f'{p}.bn1', mid)
                last_bn = 'bn2'
            if s:
                _conv(sd, f'{p}.se.conv_reduce', (s, mid, 1, 1), bias=True)
                _conv(sd, f'{p}.se.conv_expand', (mid, s, 1, 1), bias=True)
            _conv(sd, f'{p}.conv_pwl', (cout, mid, 1, 1))
            _bn(sd, f'{p}.{last_bn}', cout)
        p = f'network. layer{len(layers) + 2}.net'
        t = arch.tail_channels[0]
        _conv(sd, f'{p}.0', (t, arch.out_channels, 1, 1))
        _bn(sd, f'{p}.1', t)
        _conv(sd, f'{p}.6', (num_classes, t), bias=True)
        return sd
    n_head = 1 + sum(1 for ly in layers[1:3] if ly.type == 'conv')
    for j in range(n_head):
        _conv(
            sd, f'network.head:.net.{3 * j}', (layers[j].out_channels, layers[j].in_channels, 3, 3)
        )
        _bn(sd, f'network.head:.net.{3 * j + 1}', layers[j].out_channels)
    for i, ly in enumerate(layers[n_head:]):
        p = f'network.stage: {ly.stage} irb{i + 3}.body'
        cin, mid, cout, k = ly.in_channels, ly.mid_channels, ly.out_channels, ly.kernel
        _conv(sd, f'{p}.0', (mid, cin, 1, 1))
        _bn(sd, f'{p}.1', mid)
        _conv(sd, f'{p}.3', (mid, 1, k, k))
        _bn(sd, f'{p}.4', mid)
        _conv(sd, f'{p}.6', (cout, mid, 1, 1))
        _bn(sd, f'{p}.7', cout)
    t0, t1 = arch.tail_channels
    _conv(sd, 'network.tail:.net.0', (t0, arch.out_channels, 1, 1))
    _bn(sd, 'network.tail:.net.1', t0)
    _conv(sd, 'network.tail:.net.4', (t1, t0, 1, 1))
    _conv(sd, 'network.tail:.net.8', (num_classes, t1), bias=True)
    return sd


@pytest.mark.parametrize('tier', ['GPUNet-0', 'GPUNet-2', 'GPUNet-P0', 'GPUNet-D1', 'GPUNet-D2'])
def test_release_to_mm_loads_strict_and_round_trips(tier):
    arch = get_tier(tier)
    release = release_state_dict(arch)
    converted = release_to_mm(release, arch)
    model = build_release_classifier(tier)
    model.load_state_dict(converted, strict=True)  # every key and shape matches
    back = mm_to_release(model.state_dict(), arch)
    assert set(back) == set(release)
    for k, v in release.items():
        assert torch.equal(back[k], v), k


def test_known_tensors_land_in_the_right_modules():
    arch = get_tier('GPUNet-0')
    release = release_state_dict(arch)
    model = build_release_classifier('GPUNet-0')
    model.load_state_dict(release_to_mm(release, arch))
    # release layer 11 (first SE IRB, stage 6) is the first block of level 4 (stride 32)
    blk = model.backbone.layers[4][0]
    assert torch.equal(
        blk.se.conv1.conv.weight, release['network.stage: 6 layer13.se.conv_reduce.weight']
    )
    assert torch.equal(
        blk.expand_conv.bn.running_var, release['network.stage: 6 layer13.bn1.running_var']
    )
    assert torch.equal(model.head.fc.weight, release['network. layer15.net.6.weight'])
    d1 = get_tier('GPUNet-D1')
    rd = release_state_dict(d1)
    m = build_release_classifier('GPUNet-D1')
    m.load_state_dict(release_to_mm(rd, d1))
    assert torch.equal(m.head.hidden[0].weight, rd['network.tail:.net.4.weight'][:, :, 0, 0])


def test_ema_preferred_and_module_prefix_stripped():
    ckpt = {
        'state_dict': {'module.a': torch.zeros(1)},
        'state_dict_ema': {'module.a': torch.ones(1)},
    }
    assert extract_state_dict(ckpt)['a'].item() == 1
    assert extract_state_dict(ckpt, use_ema=False)['a'].item() == 0


def test_wrong_tier_is_a_clear_error():
    release = release_state_dict(get_tier('GPUNet-0'))
    with pytest.raises(ValueError, match='units .* but GPUNet-1 needs'):
        release_to_mm(release, get_tier('GPUNet-1'))


def test_converter_cli(tmp_path, repo_root):
    arch = get_tier('GPUNet-1')
    src = tmp_path / 'gpunet_1.pth.tar'
    torch.save({'state_dict_ema': release_state_dict(arch), 'epoch': 450}, src)
    dst = tmp_path / 'out' / 'gpunet-1_in1k.pth'
    r = subprocess.run(
        [
            sys.executable,
            'tools/model_converters/gpunet_release_to_mm.py',
            str(src),
            str(dst),
            '--tier',
            'GPUNet-1',
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(dst, weights_only=False)
    model = build_release_classifier('GPUNet-1')
    model.load_state_dict(ckpt['state_dict'], strict=True)
    assert ckpt['meta']['arch']['name'] == 'GPUNet-1'
