import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import gpunet_mm  # noqa: F401
from gpunet_mm.models import TIER_NAMES, TIERS, get_tier
from gpunet_mm.models.backbones import GPUNet
from gpunet_mm.models.classifiers import build_release_classifier

# Release classifier parameter counts (1000 classes), counted from the release's module
# definitions (GPUNet-0/1/2 agree with the paper's 11.9M / 12.7M / 25.8M).
RELEASE_PARAMS = {
    'GPUNet-0': 11_885_432,
    'GPUNet-1': 12_704_192,
    'GPUNet-2': 25_798_704,
    'GPUNet-P0': 22_815_080,
    'GPUNet-P1': 39_905_672,
    'GPUNet-D1': 10_589_859,
    'GPUNet-D2': 19_036_728,
}


def build_classifier(tier, num_classes=1000):
    return build_release_classifier(tier, num_classes=num_classes)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('name', TIER_NAMES)
def test_classifier_param_count_matches_release(name):
    model = build_classifier(name)
    assert n_params(model) == RELEASE_PARAMS[name]


@pytest.mark.parametrize('tier', range(len(TIERS)))
def test_builds_in_both_registries(tier):
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS

    for reg in (DET, CLS):
        m = reg.build(dict(type='GPUNet', tier=tier, out_indices=(2, 3, 4)))
        assert isinstance(m, GPUNet)


@pytest.mark.parametrize('tier', range(len(TIERS)))
def test_feature_strides_and_channels(tier):
    arch = get_tier(tier)
    n = len(arch.level_strides())
    model = GPUNet(tier=tier, out_indices=tuple(range(n + 1))).eval()
    size = 128
    with torch.no_grad():
        outs = model(torch.rand(1, 3, size, size))
    info = GPUNet.feature_info(tier)
    assert len(outs) == len(info) == n + 1
    for out, inf, stride, ch in zip(outs, info, model.out_strides, model.out_channels):
        assert out.shape[1] == inf['channels'] == ch
        assert out.shape[2] == out.shape[3] == size // inf['stride'] == size // stride


def test_release_padding_reproduces_quirk():
    model = GPUNet(tier=0, out_indices=(0, 1, 2), padding='release').eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 320, 320))
    assert [o.shape[-1] for o in outs] == [160, 79, 39]
    sym = GPUNet(tier=0, out_indices=(0, 1, 2)).eval()
    with torch.no_grad():
        assert [o.shape[-1] for o in sym(torch.rand(1, 3, 320, 320))] == [160, 80, 40]
    # weights are identical in shape: release-padded checkpoints load into symmetric models
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in sym.state_dict().items()
    }


def test_tail_only_built_when_asked():
    det = GPUNet(tier=0, out_indices=(2, 3, 4))
    assert not det.with_tail and len(det.layers) == 5
    cls = GPUNet(tier=0)
    assert cls.with_tail and len(cls.layers) == 6 and cls.out_indices == (5,)
    assert cls.out_channels == (1280,)


def test_frozen_stages_and_norm_eval():
    model = GPUNet(tier=1, out_indices=(2, 3, 4), frozen_stages=2, norm_eval=True)
    model.train()
    for i, layer in enumerate(model.layers):
        grads = {p.requires_grad for p in layer.parameters()}
        assert grads == ({False} if i < 2 else {True})
        for m in layer.modules():
            if isinstance(m, _BatchNorm):
                assert not m.training
    model = GPUNet(tier=1, out_indices=(2, 3, 4), frozen_stages=1, norm_eval=False).train()
    assert not any(m.training for m in model.layers[0].modules() if isinstance(m, _BatchNorm))
    assert all(m.training for m in model.layers[1].modules() if isinstance(m, _BatchNorm))
    # a frozen stage's running stats do not move in training
    before = copy.deepcopy(model.layers[0].state_dict())
    model(torch.rand(2, 3, 64, 64))
    after = model.layers[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_with_cp_same_outputs_and_grads():
    torch.manual_seed(0)
    ref = GPUNet(tier=0, out_indices=(2, 3, 4), drop_path_rate=0.0)
    cp_model = copy.deepcopy(ref)
    cp_model.with_cp = True
    ref.train()
    cp_model.train()
    x = torch.rand(2, 3, 64, 64)
    outs_a, outs_b = ref(x), cp_model(x)
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b)
    sum(o.square().mean() for o in outs_a).backward()
    sum(o.square().mean() for o in outs_b).backward()
    for (na, pa), (_, pb) in zip(ref.named_parameters(), cp_model.named_parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=na)


def test_norm_and_act_overrides():
    m = GPUNet(tier=0, out_indices=(4,), norm_cfg=dict(type='BN', requires_grad=True))
    bns = [x for x in m.modules() if isinstance(x, _BatchNorm)]
    assert bns and all(b.eps == 1e-3 for b in bns)
    d = GPUNet(tier='GPUNet-D1', out_indices=(4,))
    assert all(b.eps == 1e-5 for b in d.modules() if isinstance(b, _BatchNorm))
    h = GPUNet(tier=0, out_indices=(4,), act_cfg=dict(type='HSwish'))
    names = {type(x).__name__ for x in h.modules()}
    # mmcv maps 'HSwish' to torch's Hardswish on recent torch
    assert names & {'HSwish', 'Hardswish'} and not names & {'SiLU', 'ReLU'}


def test_drop_path_rate_linear():
    m = GPUNet(tier=0, out_indices=(4,), drop_path_rate=0.2)
    rates = [
        b.drop_path.drop_prob
        for b in m.modules()
        if hasattr(b, 'drop_path') and hasattr(b.drop_path, 'drop_prob')
    ]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.2) and rates[0] > 0


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(tier=9), r'tier: got 9.*GPUNet-0'),
        (dict(tier='GPUNet-X'), r"tier: got 'GPUNet-X'"),
        (dict(), 'exactly one of tier= and arch='),
        (dict(tier=0, arch=dict(rows=[])), 'exactly one of tier= and arch='),
        (dict(tier=0, out_indices=(7,)), r'out_indices: got 7; allowed for GPUNet-0: -6..5'),
        (dict(tier=0, out_indices=(2, 3), frozen_stages=6), r'frozen_stages: got 6.*-1..5'),
        (dict(tier=0, padding='same'), r"padding: got 'same'"),
        (dict(arch=dict(rows=[['irb', 3, 8, 1, 1, 2]])), 'stem and must have stride 2'),
        (dict(arch=dict(rows=[['conv', 3, -4, 1, 2]])), r'out_channels: got -4'),
        (
            dict(arch=dict(rows=[['conv', 3, 16, 1, 2], ['irb', 3, 16, 1, 3, 2]])),
            r'stride: got 3; allowed: 1 or 2',
        ),
    ],
)
def test_bad_input_raises_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPUNet(**kwargs)


def test_custom_arch_spec():
    arch = dict(
        name='tiny',
        tail_channels=[64],
        rows=[
            dict(type='conv', kernel=3, out_channels=8, stride=2, act='swish'),
            dict(type='fused', kernel=3, out_channels=16, num=2, stride=2, expansion=2, se=True),
            dict(type='irb', kernel=5, out_channels=24, num=2, stride=2, expansion=3),
        ],
    )
    m = GPUNet(arch=arch, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = m(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [(8, 16, 16), (16, 8, 8), (24, 4, 4), (64, 4, 4)]


@pytest.mark.parametrize('tier', ['GPUNet-0', 'GPUNet-D1'])
@pytest.mark.parametrize('padding', ['symmetric', 'release'])
def test_arch_levels_describe_the_built_backbone(tier, padding):
    """``GPUNetArch.levels`` is what the backbone builds: same grouping, channels, sizes."""
    arch = get_tier(tier)
    levels = arch.levels((96, 64), release_padding=padding == 'release')
    model = GPUNet(arch=arch, out_indices=tuple(range(len(levels))), padding=padding).eval()
    assert len(model.layers) == len(levels)
    for level, module in zip(levels, model.layers):
        assert len(module) == len(level.layers)
        assert [ly.position for ly in level.layers] == list(range(len(level.layers)))
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 96, 64))
    for level, feat in zip(levels, feats):
        assert tuple(feat.shape[1:]) == (level.out_channels, *level.out_hw)
    assert model.out_strides == tuple(lv.stride for lv in levels)
    flat = arch.placed_layers((96, 64))
    assert [ly.index for ly in flat] == list(range(arch.num_layers))
    assert all(a.out_hw == b.in_hw for a, b in zip(flat, flat[1:]))


def test_blocks_are_configured_by_arguments():
    """The release semantics come from the block arguments, not from edits after building."""
    from gpunet_mm.models.blocks import GPUNetFusedIRB, GPUNetIRB

    d1 = get_tier('GPUNet-D1')
    model = GPUNet(arch=d1, out_indices=(0, 1, 2, 3, 4), padding='release')
    placed = d1.placed_layers(release_padding=True)
    equal_mid = [ly for ly in placed if ly.type == 'irb' and ly.mid_channels == ly.in_channels]
    assert equal_mid, 'GPUNet-D1 has IRBs with mid == in'
    for ly in equal_mid:
        block = model.layers[ly.level][ly.position]
        assert isinstance(block, GPUNetIRB)
        assert block.expand_conv.conv.weight.shape[:2] == (ly.mid_channels, ly.in_channels)
    g0 = get_tier('GPUNet-0')
    model = GPUNet(arch=g0, out_indices=(0, 1, 2, 3, 4), padding='release')
    fused2 = [ly for ly in g0.placed_layers() if ly.type == 'fused' and ly.stride == 2]
    assert fused2
    for ly in fused2:
        block = model.layers[ly.level][ly.position]
        assert isinstance(block, GPUNetFusedIRB)
        assert block.conv1.conv.padding == (0, 0)
    fused = GPUNetFusedIRB(8, 8, 16, kernel_size=3, stride=1)
    assert fused.conv1.conv.padding == (1, 1) and fused.with_residual
    with pytest.raises(ValueError, match='stride: got 3; allowed: 1, 2'):
        GPUNetIRB(8, 8, 16, stride=3)


# --------------------------------------------------------------------------- strides
def _det(out_indices, in_channels, **heads):
    return dict(
        type='RetinaNet',
        backbone=dict(type='GPUNet', tier='GPUNet-0', out_indices=out_indices),
        neck=dict(type='FPN', in_channels=in_channels, out_channels=8, num_outs=5),
        **heads,
    )


def test_neck_and_head_strides_are_checked_at_build_time():
    from gpunet_mm.models.stride_check import check_feature_strides

    anchors = dict(bbox_head=dict(anchor_generator=dict(strides=[8, 16, 32, 64, 128])))
    check_feature_strides(_det((2, 3, 4), [64, 256, 704], **anchors))  # RetinaNet: 8-128
    # FCOS-style point heads declare their strides on the head
    check_feature_strides(
        _det((2, 3, 4), [64, 256, 704], bbox_head=dict(strides=[8, 16, 32, 64, 128]))
    )
    two_stage = dict(
        rpn_head=dict(anchor_generator=dict(strides=[4, 8, 16, 32, 64])),
        roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[4, 8, 16, 32])),
    )
    check_feature_strides(_det((1, 2, 3, 4), [32, 64, 256, 704], **two_stage))
    with pytest.raises(
        ValueError, match=r'rpn_head\.anchor_generator\.strides .*out_indices=\(1, 2, 3, 4\)'
    ):
        check_feature_strides(_det((2, 3, 4), [64, 256, 704], **two_stage))
    only_roi = dict(roi_head=two_stage['roi_head'])
    with pytest.raises(
        ValueError, match=r'featmap_strides \[4, 8, 16, 32\] do not match .* \[8, 16'
    ):
        check_feature_strides(_det((2, 3, 4), [64, 256, 704], **only_roi))
    # a ResNet or a neck the check does not model is left to mmdet
    check_feature_strides(dict(backbone=dict(type='ResNet', depth=50), **two_stage))
