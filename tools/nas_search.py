"""Search for the most accurate GPUNet backbone under latency budgets (the main job).

    python tools/nas_search.py CONFIG --work-dir DIR [--resume] [--ray-address auto|HOST:PORT]
        [--budgets 1.0,1.5,2.0] [--trials N] [--workers N] [--simulate]
        [--warm-start OTHER_WORK_DIR] [--cfg-options KEY=VALUE ...]

Trains every candidate with an mmengine Runner on Ray workers, measures each candidate's
exact end-to-end latency (the exported detector with decoding and NMS) on the target, and
survives crashes: run the same command with --resume. See docs/nas_search.md.
"""

import argparse
import json
import logging
import sys

from gpunet_mm.apis.runner import CfgOptionsAction


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Latency-constrained LA-MCTS-BO search on Ray')
    p.add_argument('config', help='search config (configs/nas/...)')
    p.add_argument('--work-dir', required=True, help='where the journal and results go')
    p.add_argument(
        '--resume', action='store_true', help='continue the search whose journal is in --work-dir'
    )
    p.add_argument(
        '--ray-address',
        default=None,
        help="join a running Ray cluster ('auto' or HOST:PORT); default: a local "
        'Ray started in-process on 127.0.0.1',
    )
    p.add_argument('--dashboard', action='store_true', help="start Ray's dashboard (local Ray)")
    p.add_argument(
        '--budgets',
        default=None,
        help='latency budgets in ms, comma-separated (e.g. 1.0,1.5,2.0), or '
        "'1.2*GPUNet-0' relative to a reference tier measured on the target",
    )
    p.add_argument('--trials', type=int, default=None, help='trained candidates in total')
    p.add_argument('--workers', type=int, default=None, help='concurrent trainings')
    p.add_argument(
        '--simulate',
        action='store_true',
        help='surrogate objective on virtual workers (the controller runs for real)',
    )
    p.add_argument(
        '--warm-start',
        default=None,
        metavar='OTHER_WORK_DIR',
        help="re-measure an earlier search's trained candidates on this target and "
        'search on from them',
    )
    p.add_argument('--no-progress', action='store_true', help='log lines instead of a live view')
    p.add_argument(
        '--hub-file',
        default=None,
        help='model hub file the winners are added to (default: the user hub, see tools/hub.py)',
    )
    p.add_argument('--no-hub', action='store_true', help='do not add the winners to the hub')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, e.g. nas.seed=1 train_cfg.max_epochs=2',
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    from gpunet_mm.search import JournalError, SearchError
    from gpunet_mm.search.api import load_search_config, nas_settings, run_search
    from gpunet_mm.search.lock import WorkDirBusyError
    from gpunet_mm.search.progress import SearchProgress
    from gpunet_mm.search.trainer import SearchConfigError

    user_errors = (
        JournalError,
        SearchError,
        SearchConfigError,
        WorkDirBusyError,
        FileNotFoundError,
    )
    opts = dict(args.cfg_options or {})
    if args.budgets:
        parts = [b.strip() for b in args.budgets.split(',') if b.strip()]
        key = 'nas.simulate.budgets' if args.simulate else 'nas.budgets'
        opts[key] = [float(b) if b.replace('.', '', 1).isdigit() else b for b in parts]
    if args.trials is not None:
        opts['nas.num_trials'] = args.trials
    if args.workers is not None:
        opts['nas.simulate.num_workers' if args.simulate else 'nas.num_workers'] = args.workers
    progress = None
    try:
        cfg = load_search_config(args.config, opts)
        progress = SearchProgress(
            nas_settings(cfg)['num_trials'], live=False if args.no_progress else None
        )
        summary = run_search(
            cfg,
            args.work_dir,
            resume=args.resume,
            simulate=args.simulate,
            ray_address=args.ray_address,
            dashboard=args.dashboard,
            warm_start=args.warm_start,
            on_update=progress,
        )
    except user_errors as e:  # a bad input: what is wrong and how to fix it, no traceback
        print(f'nas_search: error: {e}', file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            progress.close()
    print(json.dumps({k: v for k, v in summary.items() if k != 'files'}, indent=1, default=str))
    if not (args.simulate or args.no_hub):
        from gpunet_mm.hub import HubError, import_search

        try:
            added = import_search(args.work_dir, replace=True, path=args.hub_file)
            names = ', '.join(e.name for e in added) or 'nothing (no winner)'
            print(f'added to the model hub: {names} (tools/hub.py list --provenance search)')
        except HubError as e:  # the search's results stand; only the hub row is missing
            print(f'nas_search: warning: not added to the model hub: {e}', file=sys.stderr)
    print(final_line(summary))
    return 0


def final_line(summary: dict) -> str:
    """What was found per budget, and how it compares with the first reference tier (trained
    in the same run, so the same detector, schedule and latency target)."""
    refs = summary.get('references') or {}
    ref_name, ref = next(iter(refs.items()), (None, None))
    metric = summary['metric']
    parts = []
    for b, w in summary['best_per_budget'].items():
        if w is None:
            parts.append(f'{b} ms: nothing trained within budget')
            continue
        text = (
            f'{b} ms: {w["arch_hash"]} at {w["latency_ms"]:.3f} ms, {metric} {w["metric"]:.4f} '
            f'(trial {w["trial_id"]}, {w["origin"]})'
        )
        if ref is not None and ref.get('arch_hash') == w['arch_hash']:
            text += f' = {ref_name} itself: no searched candidate was more accurate within budget'
        elif ref is not None and ref.get('metric') is not None and ref.get('latency_ms'):
            text += (
                f' = {w["metric"] - ref["metric"]:+.4f} {metric} at '
                f'{w["latency_ms"] / ref["latency_ms"]:.2f}x the latency of {ref_name}'
            )
        parts.append(text)
    line = 'FOUND ' + '; '.join(parts)
    for name, r in refs.items():
        m = '-' if r['metric'] is None else f'{r["metric"]:.4f}'
        lat = '-' if r['latency_ms'] is None else f'{r["latency_ms"]:.3f} ms'
        line += f' | {name} in the same run: {lat}, {metric} {m}'
    return line


if __name__ == '__main__':
    sys.exit(main())
