"""Evaluate a checkpoint (mmdet or mmpretrain config); the OpenMMLab CLI."""

import argparse
import os
import sys

import torch.distributed as dist
from mmengine.config import DictAction

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from gpunet_mm.apis import init_cpu_distributed, load_config, make_runner  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a model with a GPUNet backbone')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings'
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.work_dir, args.cfg_options)
    cfg.load_from = args.checkpoint
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must end with .pkl or .pickle, got {args.out!r}')
        cfg.test_evaluator = (
            [cfg.test_evaluator]
            if isinstance(cfg.test_evaluator, dict)
            else list(cfg.test_evaluator)
        )
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))
    own_group = init_cpu_distributed(cfg, args.launcher)
    try:
        make_runner(cfg, args.launcher).test()
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == '__main__':
    main()
