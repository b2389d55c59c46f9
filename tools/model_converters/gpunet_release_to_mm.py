"""Convert a GPUNet release (NGC) checkpoint into an mmpretrain ImageClassifier checkpoint.

    python tools/model_converters/gpunet_release_to_mm.py SRC.pth DST.pth --tier GPUNet-0

Takes the EMA weights when the file holds them (the release evaluates with EMA), unless
``--no-ema``. The output loads with ``configs/gpunet/gpunet-<t>_*_in1k.py`` and, through
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``, into detectors.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from gpunet_mm.models import get_tier  # noqa: E402
from gpunet_mm.models.release_checkpoint import extract_state_dict, release_to_mm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='release checkpoint (.pth / .pth.tar)')
    parser.add_argument('dst', help='output path')
    parser.add_argument(
        '--tier', required=True, help='tier of the checkpoint: 0-6 or a release name like GPUNet-D1'
    )
    parser.add_argument('--no-ema', action='store_true', help='take the non-EMA weights')
    args = parser.parse_args()
    arch = get_tier(args.tier)
    ckpt = torch.load(args.src, map_location='cpu', weights_only=False)
    state = release_to_mm(extract_state_dict(ckpt, use_ema=not args.no_ema), arch)
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save(
        dict(
            state_dict=state,
            meta=dict(arch=arch.to_dict(), source=args.src, converted=time.strftime('%Y-%m-%d')),
        ),
        args.dst,
    )
    print(f'{arch.name}: wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
