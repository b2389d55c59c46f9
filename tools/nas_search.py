"""Search for the most accurate GPUNet backbone under latency budgets (the main job).

    python tools/nas_search.py CONFIG --work-dir DIR [--resume] [--ray-address auto|HOST:PORT]
        [--budgets 1.0,1.5,2.0] [--trials N] [--workers N] [--simulate]
        [--warm-start OTHER_WORK_DIR] [--cfg-options KEY=VALUE ...]
        [--add-to-hub | --hub-file FILE | --no-hub]
    python tools/nas_search.py --final WORK_DIR [--cfg-options nas.final.top_k=3 ...]

Trains every candidate with an mmengine Runner on Ray workers, measures each candidate's
exact end-to-end latency (the exported detector with decoding and NMS) on the target, and
survives crashes: run the same command with --resume. See docs/distributed_search.md.
"""

import argparse
import logging
import sys

from gpunet_mm.apis.runner import CfgOptionsAction


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Latency-constrained LA-MCTS-BO search on Ray')
    p.add_argument('config', nargs='?', help='search config (configs/nas/...)')
    p.add_argument('--work-dir', default=None, help='where the journal and results go')
    p.add_argument(
        '--final',
        default=None,
        metavar='WORK_DIR',
        help='retrain the top-k per budget of the search in WORK_DIR on the full schedule '
        '(nas.final, default top_k=2), with the config its journal holds',
    )
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
        '--add-to-hub',
        action='store_true',
        help='also add the winners to your model hub (default: only to WORK_DIR/hub.jsonl)',
    )
    p.add_argument(
        '--hub-file',
        default=None,
        help='add the winners to this model hub file (implies --add-to-hub)',
    )
    p.add_argument('--no-hub', action='store_true', help='write no hub rows at all')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, e.g. nas.seed=1 train_cfg.max_epochs=2',
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.final is None and (args.config is None or args.work_dir is None):
        print('nas_search: error: CONFIG and --work-dir are required (or --final WORK_DIR)')
        return 2
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    from gpunet_mm.search import JournalError, SearchError
    from gpunet_mm.search.api import (
        load_search_config,
        nas_settings,
        run_search,
        validate_config,
    )
    from gpunet_mm.search.controller import SearchHalted
    from gpunet_mm.search.faults import disk_full_reason
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
    simulate, warm_start, work_dir = args.simulate, args.warm_start, args.work_dir
    try:
        if args.final is not None:
            cfg, simulate, warm_start = final_config(args.final, opts)
            work_dir = args.final
        else:
            cfg = load_search_config(args.config, opts)
            if args.simulate:  # the same checks as a real search: a simulation of a search
                validate_config(cfg)  # that could not run tells the user nothing
        progress = SearchProgress(
            nas_settings(cfg)['num_trials'], live=False if args.no_progress else None
        )
        summary = run_search(
            cfg,
            work_dir,
            resume=args.resume or args.final is not None,
            simulate=simulate,
            ray_address=args.ray_address,
            dashboard=args.dashboard,
            warm_start=warm_start,
            on_update=progress,
        )
    except SearchHalted as e:  # the setup failed (cluster, data, disk): fix it, then --resume
        print(f'nas_search: error: {e}: {resume_command(args, work_dir)}', file=sys.stderr)
        return 2
    except user_errors as e:  # a bad input: what is wrong and how to fix it, no traceback
        print(f'nas_search: error: {e}', file=sys.stderr)
        return 2
    except OSError as e:  # a full disk before the search began (its lock, its folder)
        if disk_full_reason(e) is None:
            raise
        print(
            f'nas_search: error: {disk_full_reason(e)}, then run the same command again',
            file=sys.stderr,
        )
        return 2
    finally:
        if progress is not None:
            progress.close()
    from gpunet_mm.search.report import all_failed, final_line, summary_table

    print(summary_table(summary, work_dir))
    if not (simulate or args.no_hub) and not add_to_hub(args, work_dir):
        return 2
    print(final_line(summary))
    failed = all_failed(summary)
    if failed:
        print(f'nas_search: error: {failed}', file=sys.stderr)
        return 1
    return 0


def resume_command(args: argparse.Namespace, work_dir: str) -> str:
    """The command that continues this search (or its final retrain) where it stopped."""
    if args.final is not None:
        return f'python tools/nas_search.py --final {args.final}'
    again = f'python tools/nas_search.py {args.config or ""} --work-dir {work_dir} --resume'
    return again.replace('  ', ' ')


def add_to_hub(args: argparse.Namespace, work_dir: str) -> bool:
    """The winners go to the work_dir's own hub file; to the user hub only when asked
    (``--add-to-hub``, ``--hub-file``), so a demo or a trial run never answers a query.
    False when the disk was full (the error says how to add them once space is freed)."""
    import os.path as osp

    from gpunet_mm.hub import HubError, import_search
    from gpunet_mm.search.faults import disk_full_reason

    shared = args.add_to_hub or args.hub_file is not None
    path = args.hub_file if shared else osp.join(work_dir, 'hub.jsonl')
    try:
        added = import_search(work_dir, replace=True, path=path)
    except HubError as e:  # the search's results stand; only the hub row is missing
        print(f'nas_search: warning: not added to the model hub: {e}', file=sys.stderr)
        return True
    except OSError as e:  # the hub file was left as it was (an atomic write)
        reason = disk_full_reason(e)
        if reason is None:
            raise
        where = f' --hub-file {path}' if path else ''
        print(
            f'nas_search: error: the search finished, but its winners are not in the model '
            f'hub{where and " " + path}: {reason}, then add them: python tools/hub.py{where} '
            f'import {work_dir} --replace',
            file=sys.stderr,
        )
        return False
    names = ', '.join(e.name for e in added) or 'nothing (no winner)'
    cmd = f'tools/hub.py --hub-file {path}' if path else 'tools/hub.py'
    print(f'hub rows: {names} ({cmd} list --provenance search --include-toy)')
    if not shared:
        print(f'add them to your hub: tools/hub.py import {work_dir}')
    return True


def final_config(work_dir: str, opts: dict) -> tuple:
    """The config a search was started with (from its journal), with ``nas.final`` set:
    ``(cfg, simulate, warm_start)``."""
    from mmengine.config import Config

    from gpunet_mm.search import SearchJournal

    with SearchJournal.open(work_dir) as j:
        stored = dict(j.config)
    simulate = stored.pop('_mode', 'train') == 'simulate'
    warm_start = stored.pop('_warm_start', None)
    stored.setdefault('nas', {})
    if stored['nas'].get('final') is None:
        stored['nas']['final'] = {}
    cfg = Config(stored)
    if opts:
        cfg.merge_from_dict(opts)
    return cfg.to_dict(), simulate, warm_start


if __name__ == '__main__':
    sys.exit(main())
