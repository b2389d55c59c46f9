"""What tools/train.py and tools/test.py share, kept importable for the NAS workers."""

from __future__ import annotations

import argparse
import contextlib
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner

from ..safe_checkpoint import CorruptCheckpointError, UntrustedCheckpointError
from .checkpoint import CheckpointMismatchError

CODEBASES = ('mmdet', 'mmpretrain')


def codebase_of(cfg: Config) -> str:
    """'mmdet' or 'mmpretrain', from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in CODEBASES:
        raise ValueError(
            f'config default_scope: got {scope!r}; allowed: {CODEBASES} '
            '(inherit configs/_base_/default_runtime_det.py or _cls.py)'
        )
    return scope


def load_config(
    path: str, work_dir: Optional[str] = None, cfg_options: Optional[Dict[str, Any]] = None
) -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        merge_cfg_options(cfg, cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if osp.exists(cfg.work_dir) and not osp.isdir(cfg.work_dir):
        raise ValueError(f'work_dir {cfg.work_dir} is a file; allowed: a folder (new or not)')
    return cfg


def merge_cfg_options(cfg: Config, cfg_options: Dict[str, Any]) -> None:
    """``--cfg-options`` merged, or a ValueError naming the option that does not fit (a key
    path through a value that is not a dict, e.g. ``model.backbone.tier.x=1``)."""
    for key, value in cfg_options.items():
        try:
            cfg.merge_from_dict({key: value})
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise ValueError(
                f'--cfg-options {key}={value!r}: does not fit the config ({e}); allowed: '
                'KEY=VALUE with KEY a dotted path of dicts (list items as KEY.INDEX)'
            ) from None


class CfgOptionsAction(argparse.Action):
    """mmengine's ``DictAction`` for ``--cfg-options``, with a usage error (exit 2) naming
    the bad item instead of a traceback (``--cfg-options foo`` has no ``=``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction

        bad = [v for v in values if '=' not in v or not v.split('=', 1)[0]]
        if bad:
            parser.error(
                f'{option_string}: got {bad[0]!r}; allowed: KEY=VALUE items, '
                "e.g. train_cfg.max_epochs=2 'nas.budgets=[40,60]'"
            )
        try:
            DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)
        except (ValueError, TypeError, SyntaxError, AssertionError) as e:  # its brackets
            parser.error(f'{option_string}: cannot parse {values!r} ({e})')


def init_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Start a gloo process group when launched distributed on a machine without CUDA.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` unconditionally, which fails
    without a GPU; initialising the group here first makes mmengine skip its own init.
    Returns True when this function created the group (the caller destroys it at exit).
    """
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return False
    if launcher != 'pytorch':
        raise ValueError(
            f'launcher {launcher!r} without CUDA: only "pytorch" (torchrun) is supported on CPU'
        )
    dist.init_process_group('gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False
    )
    # (Config.setdefault returns a copy for a missing key: assign the merged dicts back)
    env_cfg = dict(cfg.get('env_cfg') or {})
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    cfg.env_cfg = env_cfg
    return True


def close_process_group(completed: bool = True) -> None:
    """Destroy the default process group; when this rank completed, first wait for the others.

    Without the barrier a rank that finishes early closes its gloo sockets while a peer is
    still working (rank 0 saving the best checkpoint, or writing a trial's result), and that
    peer can die with SIGABRT: seen once in CI, on the 2-process CPU training test, after
    training and validation but before rank 0's best checkpoint was on disk. After a failure
    there is no barrier (the peers may never arrive); torchrun stops them.
    """
    if not dist.is_initialized():
        return
    if completed:
        dist.barrier()
    dist.destroy_process_group()


@contextlib.contextmanager
def cpu_process_group(cfg: Config, launcher: str) -> Iterator[bool]:
    """:func:`init_cpu_distributed` for the body, :func:`close_process_group` after it.

    Yields whether a group was created here (False on GPU, where mmengine owns the group,
    and without a launcher).
    """
    own = init_cpu_distributed(cfg, launcher)
    completed = False
    try:
        yield own
        completed = True
    finally:
        if own:
            close_process_group(completed)


def _codebase_registry(codebase: str):
    if codebase == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    elif codebase == 'mmpretrain':
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    else:
        raise ValueError(f'codebase: got {codebase!r}; allowed: {CODEBASES}')
    register_all_modules(init_default_scope=False)
    import gpunet_mm  # noqa: F401  (registers GPUNet into both codebases)

    return MODELS


def build_model(model_cfg: Dict[str, Any], codebase: str) -> torch.nn.Module:
    """Build a model in ``codebase``'s scope, whatever default scope is current.

    mmengine resolves ``type=`` through the *current default scope*, so after, say, an mmdet
    runner ran in this process, building an mmpretrain ``ImageClassifier`` would look in
    mmdet's registry and fail; the explicit scope makes the build order-independent.
    """
    from mmengine.registry import DefaultScope

    from ..models.stride_check import check_feature_strides

    if codebase == 'mmdet':
        check_feature_strides(model_cfg)
    registry = _codebase_registry(codebase)
    with DefaultScope.overwrite_default_scope(codebase):
        return registry.build(model_cfg)


def cpu_threads(cfg: Config, requested: Optional[int] = None) -> Optional[int]:
    """The intra-op thread count for a CPU run, or None to leave torch's default.

    One thread per core left after this process's data-loader workers: more intra-op threads
    than free cores make the threads of one process wait on each other and on the workers.
    ``requested`` wins; an exported ``OMP_NUM_THREADS`` is respected (None); with CUDA,
    torch's default stays (None).
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f'threads: got {requested!r}; allowed: integers >= 1')
        return requested
    if torch.cuda.is_available() or os.environ.get('OMP_NUM_THREADS'):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    procs = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
    loader = cfg.get('train_dataloader') or cfg.get('test_dataloader') or {}
    workers = int(loader.get('num_workers', 0) or 0)
    return max(1, (cores or 1) // max(procs, 1) - workers)


def set_cpu_threads(cfg: Config, requested: Optional[int] = None) -> Optional[int]:
    """Apply :func:`cpu_threads`; returns the count set (None: untouched)."""
    n = cpu_threads(cfg, requested)
    if n is not None:
        torch.set_num_threads(n)
    return n


def _leaf_datasets(ds: Any, key: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``(config key, dataset dict)`` of every dataset that reads files, through the
    wrappers: ``dataset=`` (RepeatDataset, ClassBalancedDataset, MultiImageMixDataset) and
    ``datasets=[...]`` (ConcatDataset)."""
    if not isinstance(ds, dict):
        return
    if isinstance(ds.get('datasets'), (list, tuple)):
        for i, d in enumerate(ds['datasets']):
            yield from _leaf_datasets(d, f'{key}.datasets.{i}')
    elif isinstance(ds.get('dataset'), dict):
        yield from _leaf_datasets(ds['dataset'], f'{key}.dataset')
    else:
        yield key, ds


def _dataset_paths(cfg: Mapping[str, Any]) -> List[Tuple[str, str, str]]:
    """(config key, path, image folder) of the annotation files / image folders the
    dataloaders and the evaluators read, resolved as mmengine resolves them (an
    ``ann_file`` or ``data_prefix`` relative to ``data_root``, else to the working
    directory; an evaluator's ``ann_file`` as it is). The image folder is '' where there
    is none."""
    out = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict) and 'dataset' in loader:
            for key, ds in _leaf_datasets(loader['dataset'], f'{split}_dataloader.dataset'):
                root = ds.get('data_root') or ''
                prefix = ds.get('data_prefix') or {}
                img = (
                    prefix.get('img', prefix.get('img_path', ''))
                    if isinstance(prefix, dict)
                    else prefix
                )
                img = img if isinstance(img, str) else ''
                images = osp.join(root, img)
                if ds.get('ann_file'):
                    out.append((f'{key}.ann_file', osp.join(root, ds['ann_file']), images))
                elif img:  # a folder dataset (mmpretrain's CustomDataset): the folder
                    out.append((f'{key}.data_prefix', images, images))
                elif root:
                    out.append((f'{key}.data_root', root, images))
        evaluators = cfg.get(f'{split}_evaluator')
        evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
        for i, ev in enumerate(evaluators):
            if isinstance(ev, dict) and isinstance(ev.get('ann_file'), str) and ev['ann_file']:
                key = f'{split}_evaluator' + (f'.{i}' if len(evaluators) > 1 else '')
                out.append((f'{key}.ann_file', ev['ann_file'], ''))
    return out


#: annotation files up to this size are parsed whole by :func:`annotation_problem`
SMALL_ANNOTATION_BYTES = 32 * 1024 * 1024


def annotation_problem(path: str) -> Optional[str]:
    """Why a JSON annotation file cannot be used (empty, cut short, no images), else None.

    Cheap: a large file is judged by its last bytes only, so a 450 MB COCO file costs
    nothing; a small one is parsed whole. The parser would otherwise fail later, deep in
    pycocotools or in every worker, without the file's name."""
    if not path.endswith('.json') or not osp.isfile(path):
        return None
    size = osp.getsize(path)
    if size == 0:
        return 'empty (0 bytes): an interrupted download or copy?'
    with open(path, 'rb') as f:
        f.seek(max(0, size - 64))
        tail = f.read().rstrip()
    if not tail.endswith((b'}', b']')):
        return 'truncated (its JSON does not end with } or ]): an interrupted download or copy?'
    if size <= SMALL_ANNOTATION_BYTES:  # small enough to read whole: the demo, custom sets
        import json

        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return f'not valid JSON ({e})'
        if isinstance(data, dict) and isinstance(data.get('images'), list):
            if not data['images']:
                return "a COCO file without images (an empty dataset): 'images' is []"
    return None


def image_problem(path: str) -> Optional[str]:
    """Why an image file cannot be read (missing, empty), else None; cheap (one ``stat``).

    A zero-byte image otherwise ends in a decoder assertion (``!buf.empty()``) deep in a
    data-loader worker, without the file's name."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return 'missing'
    except OSError as e:
        return f'unreadable ({e.strerror})'
    if size == 0:
        return 'empty (0 bytes): an interrupted download or copy?'
    return None


def check_image(path: str, what: str = 'image') -> None:
    """:func:`image_problem` as a ``ValueError`` naming the file (what loads one image)."""
    problem = image_problem(path)
    if problem:
        raise ValueError(
            f'{what} {path} is {problem}; allowed: a non-empty image file (copy it again, '
            'or remove it from the dataset)'
        )


def listed_image_problem(ann_path: str, image_dir: str) -> Optional[Tuple[str, str]]:
    """The first image a COCO annotation file lists that is missing or empty, with why.

    Only for annotation files small enough to be parsed whole (the demo data, custom sets,
    COCO's val): a stat per image. A large file is not scanned (118k stats of COCO train on
    a network disk would cost more than they save)."""
    if not ann_path.endswith('.json') or not osp.isfile(ann_path):
        return None
    if osp.getsize(ann_path) > SMALL_ANNOTATION_BYTES:
        return None
    import json

    try:
        with open(ann_path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # annotation_problem names a broken file
    images = data.get('images') if isinstance(data, dict) else None
    for im in images if isinstance(images, list) else []:
        name = im.get('file_name') if isinstance(im, dict) else None
        if isinstance(name, str):
            path = osp.join(image_dir, name)
            problem = image_problem(path)
            if problem:
                return path, problem
    return None


class DatasetFilesError(Exception):
    """The data a config trains or evaluates on is missing or unusable: a fault of the
    setup, not of a model. The search stops on it at once instead of failing every
    candidate (``gpunet_mm.search.executor.systemic_cause``)."""


class MissingDatasetError(DatasetFilesError, FileNotFoundError):
    """A file or folder the dataloaders or evaluators read does not exist."""


class BrokenDatasetError(DatasetFilesError, ValueError):
    """An annotation file is empty, cut short or not JSON, or lists an empty image."""


def check_dataset_files(
    cfg: Mapping[str, Any], splits: Sequence[str] = ('train', 'val', 'test')
) -> None:
    """Fail before building anything when the data a config reads is not there.

    The one check of "the data this config reads is there", for ``tools/train.py`` and
    ``tools/test.py``, the search before its journal exists
    (``gpunet_mm.search.api.check_data``) and every search worker before it trains (it
    resolves relative paths against its own working directory, which on another node is
    not the controller's). Dataset wrappers (Repeat/ClassBalanced/ConcatDataset) and the
    evaluators' ``ann_file`` are followed. mmdet/pycocotools otherwise fail deep inside
    dataset construction; the message names the config key, the file and the command
    that creates it (the demo data is rendered locally).

    Raises:
        MissingDatasetError: a file or folder is missing (a ``FileNotFoundError``).
        BrokenDatasetError: an annotation file is unusable (a ``ValueError``).
    """
    for key, path, images in _dataset_paths(cfg):
        if key.split('_')[0] not in splits:
            continue
        if osp.exists(path):
            problem = annotation_problem(path)
            if problem:
                raise BrokenDatasetError(f'{key}: {path} is {problem}')
            bad = listed_image_problem(path, images) if images else None
            if bad:
                raise BrokenDatasetError(
                    f'{key}: {path} lists the image {bad[0]}, which is {bad[1]}; allowed: '
                    'non-empty image files (copy it again, or remove it from the annotation '
                    'file)'
                )
            continue
        if 'demo_det' in path or 'demo_cls' in path:
            how = (
                'create the demo data first: python tools/misc/make_demo_data.py '
                '(or run make demo / python tools/demo.py, which create it)'
            )
        else:
            how = (
                'download/prepare the dataset there (COCO: data/coco/, see docs/model_zoo.md), '
                'or point the config at it with --cfg-options'
            )
        where = '' if osp.isabs(path) else f' (relative to {os.getcwd()})'
        raise MissingDatasetError(f'{key}: {path}{where} does not exist; {how}')


def make_runner(cfg: Config, launcher: str = 'none') -> Runner:
    """Build the Runner of the config's codebase (registering its modules first).

    Adds :class:`~gpunet_mm.apis.checkpoint.GPUNetCheckpointHook` (architecture meta on save,
    strict checks and the ``trust_checkpoint`` opt-in on load) unless the config has one, and
    resolves an automatic ``resume`` to the newest *usable* checkpoint (see
    :func:`~gpunet_mm.apis.resolve_resume`).
    """
    from ..models.stride_check import check_feature_strides
    from .checkpoint import check_resume_file, resolve_resume

    codebase = codebase_of(cfg)
    if codebase == 'mmdet' and isinstance(cfg.get('model'), dict):
        check_feature_strides(cfg.model)
    _codebase_registry(codebase)
    cfg.launcher = launcher
    os.makedirs(cfg.work_dir, exist_ok=True)
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'GPUNetCheckpointHook' for h in hooks):
        hooks.append(dict(type='GPUNetCheckpointHook'))
    cfg.custom_hooks = hooks
    if cfg.get('resume'):
        if cfg.get('load_from') is None:
            cfg.load_from = resolve_resume(cfg.work_dir)
            if cfg.load_from is None:
                cfg.resume = False
        else:
            check_resume_file(cfg.load_from)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS

        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


# ------------------------------------------------------------------ the two tools' shared CLI
def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` share (as mmdet's two tools do):
    the launcher, checkpoint trust, CPU threads and the launcher's ``--local-rank``."""
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


def parse_tool_args(
    parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None
) -> argparse.Namespace:
    """Parse a tool's arguments; ``LOCAL_RANK`` from ``--local-rank`` where the launcher
    (``torch.distributed.launch``) passes it only as an argument."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


@contextlib.contextmanager
def tool_runner(cfg: Config, args: argparse.Namespace) -> Iterator[Runner]:
    """The runner of a tool's run with the shared options applied: checkpoint trust, CPU
    threads, and the CPU process group for the run's duration."""
    if args.trust_checkpoint:
        cfg.trust_checkpoint = True
    set_cpu_threads(cfg, args.threads)
    with cpu_process_group(cfg, args.launcher):
        yield make_runner(cfg, args.launcher)


#: the errors that are the user's input, not a bug: a tool prints them as one line and exits
#: non-zero, without a traceback (``ValueError``: bad config values; the schema layer's
#: errors name the key and the value)
USER_ERRORS: Tuple[type, ...] = (
    FileNotFoundError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    UntrustedCheckpointError,
    ValueError,
)
