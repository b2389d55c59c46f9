import json

import pytest

from gpunet_mm.models import TIERS, BlockRow, GPUNetArch, get_tier, make_divisible, tier_index
from gpunet_mm.models.arch_spec import feature_sizes


def test_make_divisible_matches_mmpretrain():
    from mmpretrain.models.utils import make_divisible as mm_make_divisible

    for v in [3.0, 7.9, 33 * 7.67, 96 * 7.67, 256 * 4.25, 704 * 2.55, 160 * 2, 1000.5]:
        assert make_divisible(v, 8) == mm_make_divisible(v, 8)


@pytest.mark.parametrize('arch', TIERS, ids=lambda a: a.name)
def test_json_round_trip_and_hash(arch):
    again = GPUNetArch.from_json(arch.to_json())
    assert again == arch
    assert again.structural_hash() == arch.structural_hash()
    assert json.loads(arch.to_json())['name'] == arch.name


def test_hash_ignores_name_but_not_structure():
    a = get_tier(0)
    assert a.replace(name='other').structural_hash() == a.structural_hash()
    rows = list(a.rows)
    rows[-1] = BlockRow(**{**rows[-1].__dict__, 'out_channels': 640})
    assert a.replace(rows=tuple(rows)).structural_hash() != a.structural_hash()
    assert len({t.structural_hash() for t in TIERS}) == len(TIERS)


def test_tier_lookup():
    assert tier_index('GPUNet-D1') == 5
    assert tier_index('gpunet-p0') == 3
    assert tier_index('1.25ms-D') == 5
    assert tier_index(2) == 2
    assert get_tier('GPUNet-2').resolution == 384
    with pytest.raises(ValueError, match=r'got 7.*GPUNet-0'):
        tier_index(7)
    with pytest.raises(ValueError, match=r"'GPUNet-3'"):
        tier_index('GPUNet-3')


def test_release_published_channels():
    # mid widths from the release's make_divisible rule / exact distilled rule
    p0 = get_tier('GPUNet-P0').layers()
    assert p0[4].mid_channels == 64 * 8
    assert p0[5].mid_channels == make_divisible(96 * 7.67) == 736
    d1 = get_tier('GPUNet-D1').layers()
    assert d1[1].mid_channels == 33 and d1[2].mid_channels == 99
    # SE squeeze ~ in/4: GPUNet-0 stage 6 first layer in=256 e=5 -> mid 1280 -> 64
    g0 = get_tier(0).layers()
    assert g0[11].se_channels == 64


def test_level_geometry():
    assert get_tier(0).level_strides() == [2, 4, 8, 16, 32]
    assert get_tier('GPUNet-P1').level_strides() == [2, 4, 8, 16, 32, 64]
    assert get_tier(0).level_channels() == [32, 32, 64, 256, 704]
    # release padding reproduces the 160 -> 79 quirk of stride-2 fused layers
    assert feature_sizes(get_tier(0), 320, release_padding=True)[:2] == [160, 79]
    assert feature_sizes(get_tier(0), 320)[:2] == [160, 80]


@pytest.mark.parametrize(
    'bad, match',
    [
        (dict(type='bogus', kernel=3, out_channels=8), r"type.*'bogus'.*conv, fused, irb"),
        (dict(type='irb', kernel=3, out_channels=0), r'out_channels.*got 0.*> 0'),
        (dict(type='irb', kernel=3, out_channels=8, stride=3), r'stride.*got 3.*1 or 2'),
        (dict(type='irb', kernel=4, out_channels=8), r'kernel.*got 4.*odd'),
        (dict(type='irb', kernel=3, out_channels=8, act='gelu'), r"act.*'gelu'.*relu, swish"),
        (dict(type='conv', kernel=3, out_channels=8, se=True), r'se.*conv'),
        (dict(type='irb', kernel=3, out_channels=8, widht=3), r"row keys.*'widht'"),
    ],
)
def test_bad_rows(bad, match):
    rows = [dict(type='conv', kernel=3, out_channels=16, stride=2), bad]
    with pytest.raises(ValueError, match=match):
        GPUNetArch.from_dict(dict(name='x', rows=rows))


def test_bad_arch_fields():
    with pytest.raises(ValueError, match='rows is empty'):
        GPUNetArch(name='x', rows=())
    with pytest.raises(ValueError, match=r"family.*'big'"):
        GPUNetArch.from_dict(dict(rows=[['conv', 3, 8, 1, 2]], family='big'))
    with pytest.raises(ValueError, match=r"arch keys.*'depth'"):
        GPUNetArch.from_dict(dict(rows=[['conv', 3, 8, 1, 2]], depth=3))
    with pytest.raises(ValueError, match='not an integer'):
        GPUNetArch.from_dict(
            dict(
                rows=[['conv', 3, 10, 1, 2], ['irb', 3, 16, 1, 1, 1.25]],
                family='distilled',
                tail_channels=[8, 8],
            )
        )


def test_levels_group_at_stride_two_and_check_shape():
    arch = get_tier('GPUNet-P1')
    levels = arch.levels(512)
    assert [lv.stride for lv in levels] == [2, 4, 8, 16, 32, 64]
    assert all(lv.layers[0].stride == 2 for lv in levels)
    assert all(ly.stride == 1 for lv in levels for ly in lv.layers[1:])
    assert [lv.out_hw for lv in levels] == [
        (256, 256),
        (128, 128),
        (64, 64),
        (32, 32),
        (16, 16),
        (8, 8),
    ]
    assert arch.levels()[-1].out_hw == (-(-arch.resolution // 64),) * 2  # k // 2 pads: ceil
    with pytest.raises(ValueError, match=r'shape.*\(0, 3\).*positive'):
        arch.levels((0, 3))


def test_levels_memo_is_safe_and_sizes_follow_the_conv_rule():
    """``levels()`` is memoised per arch: callers get their own list, the memo does not
    leak into equality/serialisation, and the sizes are ceil(size / stride) per layer (the
    rule the latency proxy and FLOP counts used before they read the one pass)."""
    for i in range(7):
        arch = get_tier(i)
        first = arch.levels()
        first.pop()  # a caller's edit must not reach the memo
        again = arch.levels()
        assert len(again) == len(first) + 1 and again == arch.levels()
        assert arch == GPUNetArch.from_dict(arch.to_dict())
        assert '_levels_memo' not in arch.to_dict()
        size = arch.resolution
        for layer in arch.placed_layers():
            assert layer.in_hw == (size, size)
            size = -(-size // layer.stride)
            assert layer.out_hw == (size, size)
        placed = [astuple_spec(ly) for ly in arch.placed_layers()]
        assert placed == [astuple_spec(ly) for ly in arch.layers()]


def astuple_spec(layer):
    return (
        layer.type,
        layer.in_channels,
        layer.out_channels,
        layer.mid_channels,
        layer.kernel,
        layer.stride,
        layer.act,
        layer.se_channels,
        layer.stage,
    )
