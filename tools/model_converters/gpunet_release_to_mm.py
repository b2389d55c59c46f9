"""Convert a GPUNet release (NGC) checkpoint into an mmpretrain ImageClassifier checkpoint.

    python tools/model_converters/gpunet_release_to_mm.py SRC.pth DST.pth --tier GPUNet-0

Takes the EMA weights when the file holds them (the release evaluates with EMA), unless
``--no-ema``. The source is loaded weights-only (release checkpoints are plain state dicts;
a file that needs more is refused unless ``--trust-checkpoint``), and every tensor is checked
against the tier's shapes. The output loads with ``configs/gpunet/gpunet-<t>_*_in1k.py`` and,
through ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``, into
detectors.
"""

import argparse
import os
import os.path as osp
import sys
import time

import torch

from gpunet_mm.models import get_tier
from gpunet_mm.models.release_checkpoint import extract_state_dict, release_to_mm
from gpunet_mm.safe_checkpoint import (
    CorruptCheckpointError,
    UntrustedCheckpointError,
    load_local_checkpoint,
    trusted_checkpoints,
)


def convert(src: str, dst: str, tier: str, use_ema: bool = True, trust: bool = False) -> int:
    """Write the converted checkpoint; returns the number of tensors."""
    arch = get_tier(tier)
    if osp.realpath(src) == osp.realpath(dst) or (
        osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst)
    ):
        raise ValueError(
            f'DST {dst} is the source checkpoint {src}: converting would overwrite the release '
            'file; allowed: another output path'
        )
    with trusted_checkpoints(trust):
        ckpt = load_local_checkpoint(src, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{src} holds a {type(ckpt).__name__}; allowed: a dict of tensors')
    state = release_to_mm(extract_state_dict(ckpt, use_ema=use_ema), arch)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(
        dict(
            state_dict=state,
            meta=dict(arch=arch.to_dict(), source=src, converted=time.strftime('%Y-%m-%d')),
        ),
        dst,
    )
    return len(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='release checkpoint (.pth / .pth.tar)')
    parser.add_argument('dst', help='output path')
    parser.add_argument(
        '--tier', required=True, help='tier of the checkpoint: 0-6 or a release name like GPUNet-D1'
    )
    parser.add_argument('--no-ema', action='store_true', help='take the non-EMA weights')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='allow a source that needs full unpickling (arbitrary code: only files you trust)',
    )
    args = parser.parse_args()
    try:
        n = convert(args.src, args.dst, args.tier, not args.no_ema, args.trust_checkpoint)
    except (
        FileNotFoundError,
        KeyError,
        ValueError,
        CorruptCheckpointError,
        UntrustedCheckpointError,
    ) as e:
        sys.exit(f'error: {e}')
    print(f'{get_tier(args.tier).name}: wrote {n} tensors to {args.dst}')


if __name__ == '__main__':
    main()
