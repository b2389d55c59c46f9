"""Train a detector (mmdet) or classifier (mmpretrain) from a config; the OpenMMLab CLI."""

import argparse
import sys

from gpunet_mm.apis import (
    USER_ERRORS,
    CfgOptionsAction,
    add_runner_args,
    check_dataset_files,
    load_config,
    parse_tool_args,
    tool_runner,
)


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
    add_runner_args(parser)
    return parse_tool_args(parser)


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
    check_dataset_files(cfg, ('train', 'val'))
    with tool_runner(cfg, args) as runner:
        runner.train()


if __name__ == '__main__':
    main()
