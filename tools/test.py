"""Evaluate a checkpoint (mmdet or mmpretrain config); the OpenMMLab CLI."""

import argparse
import math
import os
import sys
from typing import Any, Mapping, Optional

from gpunet_mm.apis import (
    USER_ERRORS,
    CfgOptionsAction,
    add_runner_args,
    check_dataset_files,
    codebase_of,
    load_config,
    parse_tool_args,
    tool_runner,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a model with a GPUNet backbone')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl)')
    parser.add_argument(
        '--show-dir',
        help='draw predictions (and ground truth) of every test image into this folder '
        '(relative to the run folder in work_dir), as mmdet/mmpretrain test.py --show-dir',
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction, help='override config settings'
    )
    add_runner_args(parser)
    return parse_tool_args(parser)


def enable_show_dir(cfg, show_dir: str) -> None:
    """Turn on the codebase's visualisation hook, as mmdet's/mmpretrain's own test.py do."""
    vis = cfg.default_hooks.visualization
    if codebase_of(cfg) == 'mmdet':
        vis.update(draw=True, test_out_dir=show_dir)
    else:
        vis.update(enable=True, out_dir=show_dir)


def main() -> None:
    try:
        run(parse_args())
    except (*USER_ERRORS, NoMetricError) as e:
        sys.exit(f'error: {e}')


def run(args: argparse.Namespace) -> None:
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
    if args.show_dir:
        enable_show_dir(cfg, args.show_dir)
    check_dataset_files(cfg, ('test',))
    with tool_runner(cfg, args) as runner:
        metrics = runner.test()
    check_metrics(metrics, args.checkpoint)


class NoMetricError(RuntimeError):
    """The evaluation produced no usable metric: the run failed, whatever mmengine logged."""


def check_metrics(metrics: Optional[Mapping[str, Any]], checkpoint: str) -> None:
    """A test run whose evaluator returned nothing (mmdet: "results of the whole dataset is
    empty", e.g. NaN weights predict no box) or only NaN is a failure, not exit 0."""
    values = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
    if not values or all(math.isnan(float(v)) for v in values.values()):
        raise NoMetricError(
            f'checkpoint {checkpoint}: the evaluation produced no metric (got {metrics!r}); '
            'the model predicted nothing usable (NaN or untrained weights?), see the log above'
        )


if __name__ == '__main__':
    main()
