"""Export an mmdet detector end to end (backbone to NMS) for ONNX Runtime or TensorRT.

    python tools/deploy.py CONFIG [CHECKPOINT] --backend onnxruntime --shape 320 320 \
        [--fp16] [--dynamic] [--batch 1] --work-dir work_dirs/deploy

Writes WORK_DIR/end2end.onnx (outputs dets [B, N, 5], labels [B, N]), for TensorRT the engine
(or, without TensorRT installed, the engine build plans) and WORK_DIR/deploy_summary.json.
See docs/deploy.md.
"""

import argparse
import json
import os.path as osp
import sys


def parse_args(argv=None):
    from gpunet_mm.apis import CfgOptionsAction

    p = argparse.ArgumentParser(description='End-to-end detector export (ONNX / TensorRT)')
    p.add_argument('config', help='mmdet config file')
    p.add_argument('checkpoint', nargs='?', default=None, help='checkpoint (optional)')
    p.add_argument('--backend', default='onnxruntime', help='onnxruntime or tensorrt')
    p.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'), default=None)
    p.add_argument('--fp16', action='store_true', help='half-precision network in the graph')
    p.add_argument('--dynamic', action='store_true', help='dynamic batch/height/width')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--deploy-cfg', default=None, help='deploy config (.py/.json); CLI wins')
    p.add_argument('--score-thr', type=float, default=None)
    p.add_argument('--iou-thr', type=float, default=None)
    p.add_argument('--max-dets', type=int, default=None)
    p.add_argument('--pre-top-k', type=int, default=None)
    p.add_argument('--no-verify', action='store_true', help='skip the ORT-vs-PyTorch check')
    p.add_argument(
        '--verify-atol',
        type=float,
        default=None,
        help='largest box difference (px) the ORT-vs-PyTorch check accepts (default 0.5)',
    )
    p.add_argument(
        '--verify-min-labels',
        type=float,
        default=None,
        help='smallest fraction of equal labels the check accepts (default 0.99)',
    )
    p.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='allow a checkpoint that needs full unpickling (arbitrary code: only files you trust)',
    )
    p.add_argument('--work-dir', required=True)
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default=None)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import gpunet_mm  # noqa: F401
    from gpunet_mm.deploy.cli import VERIFY_ATOL_PX, VERIFY_MIN_LABELS_EQUAL, deploy
    from gpunet_mm.deploy.config import DeployConfig
    from gpunet_mm.safe_checkpoint import (
        CorruptCheckpointError,
        UntrustedCheckpointError,
        trusted_checkpoints,
    )

    base = DeployConfig.from_any(args.deploy_cfg).to_dict()
    base['backend'] = args.backend
    if args.shape:
        base['input_shape'] = tuple(args.shape)
    if args.fp16:
        base['precision'] = 'fp16'
    if args.dynamic:
        base['dynamic'] = True
    base['batch_size'] = args.batch
    pp = dict(base.get('post_processing') or {})
    for k, v in dict(
        score_threshold=args.score_thr,
        iou_threshold=args.iou_thr,
        max_detections=args.max_dets,
        pre_top_k=args.pre_top_k,
    ).items():
        if v is not None:
            pp[k] = v
    base['post_processing'] = pp
    try:
        cfg = DeployConfig.from_any(base)
        with trusted_checkpoints(args.trust_checkpoint):
            summary = deploy(
                args.config,
                args.checkpoint,
                cfg,
                args.work_dir,
                verify=not args.no_verify,
                cfg_options=args.cfg_options,
                verify_atol=VERIFY_ATOL_PX if args.verify_atol is None else args.verify_atol,
                verify_min_labels_equal=VERIFY_MIN_LABELS_EQUAL
                if args.verify_min_labels is None
                else args.verify_min_labels,
            )
    except (
        ValueError,
        FileNotFoundError,
        CorruptCheckpointError,
        UntrustedCheckpointError,
    ) as e:
        sys.exit(f'error: {e}')
    if summary.get('verify', {}).get('num_dets') == 0:
        print(
            'warning: the ORT-vs-PyTorch check compared no detections (an untrained model, or '
            'a score threshold above every score), so it proves little about the boxes',
            file=sys.stderr,
        )
    brief = {k: summary[k] for k in ('onnx', 'export_seconds', 'file_mb', 'nms', 'outputs')}
    brief.update({k: summary[k] for k in ('verify', 'tensorrt') if k in summary})
    print(json.dumps(brief, indent=2, default=str))
    print(f'summary: {osp.join(args.work_dir, "deploy_summary.json")}')
    trt = summary.get('tensorrt')
    if trt is not None and trt.get('installed') is None:
        # the ONNX file and the build plans are written; the engine that was asked for is not
        sys.exit(f'error: no TensorRT engine built: {trt["message"]}')


if __name__ == '__main__':
    main()
