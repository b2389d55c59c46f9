"""GPUNet backbone for mmdet and mmpretrain.

Layers are grouped by output stride ("levels"): ``layers[i]`` ends at stride ``2**(i+1)``
(the stem belongs to level 0), so ``out_indices=(2, 3, 4)`` gives strides 8/16/32 for
*every* tier and ``(1, 2, 3, 4)`` gives 4-32. The classification tail (1x1 conv, BN, ReLU)
is the extra last index ``num_levels`` (``-1`` also names it) and is only built when an
out index asks for it, so detectors carry no unused parameters (which DDP would reject).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, get_args

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmengine.model import Sequential
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch.nn.modules.batchnorm import _BatchNorm

from ...registry import MODELS, register_detection_module
from ...schema import GPUNetArgs, validate
from ..arch_spec import GPUNetArch, PlacedLayer, as_arch
from ..blocks import GPUNetFusedIRB, GPUNetIRB
from ..tiers import get_tier

#: the registry name of the strict pretrained loader (``gpunet_mm.apis.checkpoint``)
PRETRAINED_INIT = 'GPUNetPretrained'

ACT_CFGS: Dict[str, Dict[str, Any]] = {'relu': dict(type='ReLU'), 'swish': dict(type='SiLU')}
#: declared once, with the backbone's argument schema
PADDING_MODES = get_args(GPUNetArgs.model_fields['padding'].annotation)


def resolve_arch(
    tier: Union[int, str, None] = None, arch: Union[GPUNetArch, Dict, str, None] = None
) -> GPUNetArch:
    """Exactly one of ``tier`` (0-6 or a release name) and ``arch`` (a spec) must be given."""
    if (tier is None) == (arch is None):
        raise ValueError(
            f'give exactly one of tier= and arch=; got tier={tier!r}, '
            f'arch={"set" if arch is not None else None}'
        )
    return get_tier(tier) if tier is not None else as_arch(arch)


def build_block(
    layer: PlacedLayer,
    *,
    norm_cfg: Dict,
    act_cfg: Optional[Dict],
    conv_cfg: Optional[Dict],
    drop_path_rate: float,
) -> nn.Module:
    """One placed layer of ``arch.levels()`` as a module, configured at construction.

    ``conv`` is an mmcv ``ConvModule``, ``irb``/``fused`` are :class:`GPUNetIRB` /
    :class:`GPUNetFusedIRB` (the release's semantics: the IRB always has its 1x1 expansion,
    the fused conv takes the layer's ``padding``, 0 for stride-2 fused convs under
    ``arch.levels(release_padding=True)``).
    """
    act = act_cfg if act_cfg is not None else ACT_CFGS[layer.act]
    if layer.type == 'conv':
        return ConvModule(
            layer.in_channels,
            layer.out_channels,
            layer.kernel,
            stride=layer.stride,
            padding=layer.padding,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act,
        )
    se_cfg = None
    if layer.se_channels:
        # SELayer's own ratio/divisor rounding differs from the release's
        # round(mid * 0.25 / e); passing squeeze_channels pins the release width.
        se_cfg = dict(
            channels=layer.mid_channels,
            squeeze_channels=layer.se_channels,
            act_cfg=(act, dict(type='Sigmoid')),
        )
    common = dict(
        in_channels=layer.in_channels,
        out_channels=layer.out_channels,
        mid_channels=layer.mid_channels,
        kernel_size=layer.kernel,
        stride=layer.stride,
        se_cfg=se_cfg,
        conv_cfg=conv_cfg,
        norm_cfg=norm_cfg,
        act_cfg=act,
        drop_path_rate=drop_path_rate,
    )
    block = GPUNetFusedIRB if layer.type == 'fused' else GPUNetIRB
    return block(padding=layer.padding, **common)


def _check_layer_cfgs(
    norm_cfg: Optional[Dict], act_cfg: Optional[Dict], conv_cfg: Optional[Dict]
) -> None:
    """Clear errors for layer configs that would otherwise fail deep inside mmcv."""
    from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer

    for name, cfg, build, examples in (
        ('norm_cfg', norm_cfg, lambda c: build_norm_layer(c, 8), "dict(type='BN'), 'GN', 'LN'"),
        ('act_cfg', act_cfg, build_activation_layer, "dict(type='ReLU'), 'SiLU', 'HSwish'"),
        ('conv_cfg', conv_cfg, lambda c: build_conv_layer(c, 8, 8, 1), "dict(type='Conv2d')"),
    ):
        if cfg is None:
            continue
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise ValueError(
                f'{name}: got {cfg!r}; allowed: None or a dict with a type, e.g. {examples}'
            )
        cfg = dict(cfg)
        if name == 'norm_cfg' and cfg['type'] == 'GN':
            cfg.setdefault('num_groups', 1)
        try:
            build(cfg)
        except KeyError as e:
            raise ValueError(
                f"{name}: type {cfg['type']!r} is not registered in mmengine's MODELS; "
                f'allowed: a registered layer type, e.g. {examples} ({e})'
            ) from e


@MODELS.register_module()
@register_detection_module()
class GPUNet(BaseBackbone):
    """GPUNet (Wang et al., "Searching the Deployable Convolution Neural Networks for GPUs",
    CVPR 2022) as an OpenMMLab backbone.

    Args:
        tier: published network, ``0``-``6`` or a release name (``'GPUNet-0'``, ``'GPUNet-1'``,
            ``'GPUNet-2'``, ``'GPUNet-P0'``, ``'GPUNet-P1'``, ``'GPUNet-D1'``, ``'GPUNet-D2'``).
        arch: an explicit :class:`GPUNetArch` (or its dict / JSON form); excludes ``tier``.
        out_indices: levels to return. Level ``i`` has stride ``2**(i+1)``; index
            ``num_levels`` (or ``-1``) is the classification tail. Defaults to ``(-1,)``.
        frozen_stages: freeze the first ``frozen_stages`` entries of ``self.layers``
            (``0`` or ``-1``: nothing frozen).
        norm_cfg: normalisation; defaults to BN with the family's eps (1e-3, distilled 1e-5);
            a given config without ``eps`` gets the family eps.
        act_cfg: ``None`` keeps each layer's published activation; a config replaces all.
        conv_cfg: passed to every conv.
        padding: ``'symmetric'`` (exact strides, the default, for detection) or
            ``'release'`` (stride-2 fused convs unpadded, as the release; 160 -> 79).
        drop_path_rate: stochastic depth, linear from 0 over the blocks.
        norm_eval: keep BN layers in eval mode during training.
        with_cp: non-reentrant activation checkpointing per block.
        with_tail: build the tail conv; ``None`` builds it only if an out index names it.
        init_cfg: mmengine init config (e.g. ``dict(type='Pretrained', checkpoint=...,
            prefix='backbone.')``).
    """

    def __init__(
        self,
        tier: Union[int, str, None] = None,
        arch: Union[GPUNetArch, Dict, str, None] = None,
        out_indices: Sequence[int] = (-1,),
        frozen_stages: int = 0,
        norm_cfg: Optional[Dict] = None,
        act_cfg: Optional[Dict] = None,
        conv_cfg: Optional[Dict] = None,
        padding: str = 'symmetric',
        drop_path_rate: float = 0.0,
        norm_eval: bool = False,
        with_cp: bool = False,
        with_tail: Optional[bool] = None,
        init_cfg: Union[Dict, List[Dict], None] = (
            dict(type='Kaiming', layer='Conv2d'),
            dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1),
        ),
    ) -> None:
        super().__init__(init_cfg=list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        # plain-typed arguments by their schema: booleans are booleans (norm_eval='False'
        # would be truthy), numbers are finite and in range
        validate(
            GPUNetArgs,
            dict(
                frozen_stages=frozen_stages,
                padding=padding,
                drop_path_rate=drop_path_rate,
                norm_eval=norm_eval,
                with_cp=with_cp,
                with_tail=with_tail,
            ),
            'GPUNet',
        )
        self.arch = resolve_arch(tier, arch)
        _check_layer_cfgs(norm_cfg, act_cfg, conv_cfg)
        # raises the clear error for an arch whose first layer is not the stride-2 stem
        levels = self.arch.levels(release_padding=padding == 'release')
        self.num_levels = len(levels)
        has_tail = len(self.arch.tail_channels) > 0
        num_indices = self.num_levels + int(has_tail)
        norm_indices = self._normalise_out_indices(out_indices, num_indices, has_tail)
        self.out_indices = tuple(norm_indices)
        if with_tail is None:
            with_tail = has_tail and self.num_levels in self.out_indices
        if with_tail and not has_tail:
            raise ValueError(f'with_tail=True but arch {self.arch.name!r} has no tail_channels')
        if not with_tail and self.num_levels in self.out_indices:
            raise ValueError(f'out_indices names the tail ({self.num_levels}) but with_tail=False')
        num_layers = self.num_levels + int(with_tail)
        if not -1 <= frozen_stages <= num_layers:
            raise ValueError(
                f'frozen_stages: got {frozen_stages}; allowed: -1..{num_layers} '
                f'({self.arch.name} has {num_layers} layers)'
            )
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.padding = padding
        norm_cfg = dict(type='BN') if norm_cfg is None else dict(norm_cfg)
        norm_cfg.setdefault('eps', self.arch.bn_eps)
        self.norm_cfg = norm_cfg

        n = self.arch.num_layers
        dprs = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        self.layers = nn.ModuleList(
            Sequential(
                *(
                    build_block(
                        spec,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg,
                        conv_cfg=conv_cfg,
                        drop_path_rate=dprs[spec.index],
                    )
                    for spec in level.layers
                )
            )
            for level in levels
        )
        if with_tail:
            self.layers.append(
                ConvModule(
                    self.arch.out_channels,
                    self.arch.tail_channels[0],
                    1,
                    conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg,
                    act_cfg=dict(type='ReLU'),
                )
            )
        self.with_tail = with_tail
        level_channels = [lv.out_channels for lv in levels]
        level_strides = [lv.stride for lv in levels]
        if with_tail:
            level_channels.append(self.arch.tail_channels[0])
            level_strides.append(level_strides[-1])
        self.out_channels = tuple(level_channels[i] for i in self.out_indices)
        self.out_strides = tuple(level_strides[i] for i in self.out_indices)
        self._freeze_stages()

    def _normalise_out_indices(
        self, out_indices: Union[int, Sequence[int]], num_indices: int, has_tail: bool
    ) -> List[int]:
        """Non-negative, strictly increasing indices, so ``out_channels``/``out_strides``
        list the outputs in the order ``forward`` returns them (network order, no repeats).
        """
        if isinstance(out_indices, int) and not isinstance(out_indices, bool):
            out_indices = (out_indices,)
        allowed = (
            f'{-num_indices}..{num_indices - 1} (levels 0..{self.num_levels - 1} at strides '
            f'{self.arch.level_strides()}' + (f', {self.num_levels} = tail)' if has_tail else ')')
        )
        if not isinstance(out_indices, (list, tuple)) or not out_indices:
            raise ValueError(
                f'out_indices: got {out_indices!r}; allowed: a non-empty list of indices in '
                f'{allowed} for {self.arch.name}'
            )
        norm: List[int] = []
        for index in out_indices:
            if isinstance(index, bool) or not isinstance(index, int):
                raise ValueError(
                    f'out_indices: got {index!r} in {out_indices!r}; allowed: integers'
                )
            if not -num_indices <= index < num_indices:
                raise ValueError(
                    f'out_indices: got {index}; allowed for {self.arch.name}: {allowed}'
                )
            norm.append(index % num_indices)
        if any(b <= a for a, b in zip(norm, norm[1:])):
            raise ValueError(
                f'out_indices: got {tuple(out_indices)!r} (levels {tuple(norm)}); allowed: '
                'strictly increasing levels without repeats, since forward returns features '
                f'in network order; use {tuple(sorted(set(norm)))!r}'
            )
        return norm

    # ------------------------------------------------------------------ api
    @staticmethod
    def feature_info(
        tier: Union[int, str, None] = None, arch: Union[GPUNetArch, Dict, str, None] = None
    ) -> List[Dict[str, int]]:
        """Channels and stride of every out index, without building the network."""
        a = resolve_arch(tier, arch)
        info = [
            dict(index=lv.index, stride=lv.stride, channels=lv.out_channels) for lv in a.levels()
        ]
        if a.tail_channels:
            info.append(
                dict(index=len(info), stride=info[-1]['stride'], channels=a.tail_channels[0])
            )
        return info

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, layer in enumerate(self.layers):
            if self.with_cp and self.training and isinstance(layer, Sequential):
                for block in layer:
                    x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def init_weights(self) -> None:
        """``init_cfg=dict(type='Pretrained', ...)`` loads strictly; other inits as mmengine.

        The strict loader is the weight initialiser ``'GPUNetPretrained'`` that
        ``gpunet_mm.apis.checkpoint`` registers in mmengine's ``WEIGHT_INITIALIZERS``
        (``import gpunet_mm`` registers it): the checkpoint's architecture, tensor shapes
        and keys must match, else ``CheckpointMismatchError``. It is looked up by name, so
        the models need nothing from the layers above them.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained' and not self._is_init:
            from mmengine.model import initialize
            from mmengine.registry import WEIGHT_INITIALIZERS

            if WEIGHT_INITIALIZERS.get(PRETRAINED_INIT) is None:
                raise RuntimeError(
                    f"init_cfg type 'Pretrained': the strict loader {PRETRAINED_INIT!r} is "
                    'not registered; import gpunet_mm (it registers gpunet_mm.apis.checkpoint)'
                )
            initialize(self, dict(cfg, type=PRETRAINED_INIT))
            self._is_init = True
            return
        super().init_weights()

    def _freeze_stages(self) -> None:
        for i in range(max(self.frozen_stages, 0)):
            m = self.layers[i]
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> GPUNet:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
