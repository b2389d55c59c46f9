"""Train a detector (mmdet) or classifier (mmpretrain) from a config; the OpenMMLab CLI."""

import argparse
import os
import sys

from gpunet_mm.apis import (
    CfgOptionsAction,
    CheckpointMismatchError,
    check_dataset_files,
    cpu_process_group,
    load_config,
    make_runner,
    set_cpu_threads,
)
from gpunet_mm.safe_checkpoint import CorruptCheckpointError, UntrustedCheckpointError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model with a GPUNet backbone')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='scale the lr by the actual total batch size'
    )
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, e.g. train_cfg.max_epochs=2',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='allow checkpoints that need full unpickling (arbitrary code: only files you '
        'trust); same as trust_checkpoint=True in the config',
    )
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='CPU intra-op threads per process (default without GPU: one per core left after '
        'the data-loader workers; see docs/install.md)',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


#: errors that are the user's input, not a bug: one line, non-zero exit, no traceback
USER_ERRORS = (
    FileNotFoundError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    UntrustedCheckpointError,
    ValueError,  # bad config values: the schema layer's errors name the key and the value
)


def main() -> None:
    try:
        run(parse_args())
    except USER_ERRORS as e:
        sys.exit(f'error: {e}')


def run(args: argparse.Namespace) -> None:
    cfg = load_config(args.config, args.work_dir, args.cfg_options)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.trust_checkpoint:
        cfg.trust_checkpoint = True
    check_dataset_files(cfg, ('train', 'val'))
    set_cpu_threads(cfg, args.threads)
    with cpu_process_group(cfg, args.launcher):
        make_runner(cfg, args.launcher).train()


if __name__ == '__main__':
    main()
