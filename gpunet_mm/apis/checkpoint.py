"""A wrong checkpoint never passes silently: architecture meta, strict key/shape checks, resume.

mmengine loads checkpoints with ``strict=False``: a checkpoint of another tier, of a
classifier, or with an empty ``state_dict`` loads with warnings only, and a detector then
trains or evaluates mostly random weights. Here:

* :class:`GPUNetCheckpointHook` stores each GPUNet module's architecture (name, structural
  hash, spec) in ``checkpoint['meta']['gpunet_archs']`` when a checkpoint is saved, and on
  every load (``load_from``, ``--resume``, ``tools/test.py``) runs :func:`check_state_dict`;
  it also applies the run's ``trust_checkpoint`` opt-in (see :mod:`gpunet_mm.safe_checkpoint`).
* :func:`check_state_dict`: a different architecture (by meta hash) or any backbone tensor of
  another shape is an error naming both architectures; keys the model lacks or misses are
  errors too, except the documented ones: ``num_batches_tracked`` buffers (older files lack
  them) and the classification tail (``layers.<num_levels>``) of a backbone built without it.
  More can be allowed with the hook's ``allow_missing`` / ``allow_unexpected`` regexes.
* :func:`resolve_resume`: the checkpoint ``--resume`` should continue from, skipping
  truncated/empty files with a warning, and saying plainly when there is nothing to resume.
"""

from __future__ import annotations

import glob
import logging
import os.path as osp
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS, WEIGHT_INITIALIZERS

from ..models.backbones.gpunet import PRETRAINED_INIT

META_KEY = 'gpunet_archs'
#: keys a checkpoint may lack: BN step counters, which older checkpoints do not hold
DEFAULT_ALLOW_MISSING = (r'(^|\.)num_batches_tracked$',)


class CheckpointMismatchError(ValueError):
    """The checkpoint was made for another model (architecture, shapes or keys)."""


def gpunet_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """``{prefix: GPUNet}`` for every GPUNet inside ``model`` (prefix ends with '.')."""
    from ..models.backbones.gpunet import GPUNet

    return {
        (name + '.' if name else ''): m
        for name, m in model.named_modules()
        if isinstance(m, GPUNet)
    }


def arch_meta(model: nn.Module) -> Dict[str, Dict[str, Any]]:
    """What :class:`GPUNetCheckpointHook` stores: per GPUNet module, its architecture."""
    return {
        prefix.rstrip('.'): dict(
            name=m.arch.name, hash=m.arch.structural_hash(), arch=m.arch.to_dict()
        )
        for prefix, m in gpunet_modules(model).items()
    }


def _strip(state_dict: Mapping[str, Any], revise_keys: Sequence[Tuple[str, str]]) -> Dict:
    out = dict(state_dict)
    for p, r in revise_keys:
        out = {re.sub(p, r, k): v for k, v in out.items()}
    return out


def _shape(v: Any) -> Optional[Tuple[int, ...]]:
    return tuple(v.shape) if hasattr(v, 'shape') else None


def _guess_tiers(state_dict: Mapping[str, Any], prefix: str) -> List[str]:
    """Published tiers whose backbone has exactly the checkpoint's tensor shapes."""
    from ..models import TIERS
    from ..models.backbones.gpunet import GPUNet

    ours = {k[len(prefix) :]: _shape(v) for k, v in state_dict.items() if k.startswith(prefix)}
    if not ours:
        return []
    found = []
    for arch in TIERS:
        try:
            net = GPUNet(arch=arch, with_tail=bool(arch.tail_channels), out_indices=(-1,))
        except ValueError:
            continue
        ref = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        if all(ref.get(k) == s for k, s in ours.items()):
            found.append(arch.name)
    return found


def ckpt_arch(meta: Mapping[str, Any], module: str) -> Optional[Tuple[str, str]]:
    """(name, structural hash) of the arch a checkpoint's ``meta`` records for ``module``.

    The one reader of both meta formats: ``meta['gpunet_archs'][module]`` (written by
    :class:`GPUNetCheckpointHook`) and ``meta['arch']`` (a backbone spec, written by
    ``tools/model_converters/gpunet_release_to_mm.py``; it names the ``backbone``).
    """
    info = (meta.get(META_KEY) or {}).get(module)
    if isinstance(info, Mapping):
        return str(info.get('name')), info.get('hash')
    arch = meta.get('arch')
    if isinstance(arch, Mapping) and module in ('backbone', ''):
        from ..models.arch_spec import as_arch

        try:
            a = as_arch(dict(arch))
        except ValueError:
            return None
        return a.name, a.structural_hash()
    return None


def _ckpt_arch_name(meta: Mapping[str, Any], module: str) -> Optional[str]:
    found = ckpt_arch(meta, module)
    return None if found is None else f'{found[0]} (arch hash {found[1]})'


def _ckpt_arch_hash(meta: Mapping[str, Any], module: str) -> Optional[str]:
    found = ckpt_arch(meta, module)
    return None if found is None else found[1]


def check_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, Any],
    meta: Optional[Mapping[str, Any]] = None,
    source: str = 'the checkpoint',
    allow_missing: Iterable[str] = (),
    allow_unexpected: Iterable[str] = (),
    revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''),),
) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``state_dict`` fits ``model``.

    See the module docstring for what is checked and what is allowed. Shape differences
    outside GPUNet modules (say, a detection head fine-tuned to other classes) stay
    mmengine's warnings.
    """
    meta = meta or {}
    sd = _strip(state_dict, revise_keys)
    model_sd = model.state_dict()
    nets = gpunet_modules(model)
    # 1. architecture recorded in the checkpoint
    for prefix, net in nets.items():
        module = prefix.rstrip('.')
        ck_hash = _ckpt_arch_hash(meta, module)
        if ck_hash is not None and ck_hash != net.arch.structural_hash():
            raise CheckpointMismatchError(
                f"{source} was trained for {_ckpt_arch_name(meta, module)}, but the model's "
                f'{module or "backbone"} is {net.arch.name} (arch hash '
                f'{net.arch.structural_hash()}): use the config of the architecture it was '
                'trained for'
            )
    # 2. shapes of every backbone tensor
    for prefix, net in nets.items():
        wrong = [
            (k, _shape(v), tuple(model_sd[k].shape))
            for k, v in sd.items()
            if k.startswith(prefix) and k in model_sd and _shape(v) != tuple(model_sd[k].shape)
        ]
        if wrong:
            module = prefix.rstrip('.')
            ck_name = _ckpt_arch_name(meta, module)
            if ck_name is None:
                tiers = _guess_tiers(sd, prefix)
                ck_name = (
                    f'{" or ".join(tiers)} (by its tensor shapes)'
                    if tiers
                    else 'another architecture'
                )
            k, got, need = wrong[0]
            raise CheckpointMismatchError(
                f"{source} holds a backbone of {ck_name}, but the model's "
                f'{module or "backbone"} is {net.arch.name} (arch hash '
                f'{net.arch.structural_hash()}): {len(wrong)} tensors differ in shape, e.g. '
                f'{k}: checkpoint {got}, model {need}'
            )
    # 3. keys
    allowed_unexpected = [re.compile(p) for p in allow_unexpected]
    for prefix, net in nets.items():
        if not net.with_tail and net.arch.tail_channels:
            # documented: a classifier's tail is not built in a detector backbone
            allowed_unexpected.append(re.compile(re.escape(f'{prefix}layers.{net.num_levels}.')))
    allowed_missing = [re.compile(p) for p in (*DEFAULT_ALLOW_MISSING, *allow_missing)]
    unexpected = sorted(
        k for k in set(sd) - set(model_sd) if not any(p.search(k) for p in allowed_unexpected)
    )
    missing = sorted(
        k for k in set(model_sd) - set(sd) if not any(p.search(k) for p in allowed_missing)
    )
    if missing or unexpected:
        parts = []
        if not sd:
            parts.append('its state_dict is empty')
        if missing:
            parts.append(f'{len(missing)} model keys are missing from it, e.g. {missing[:3]}')
        if unexpected:
            parts.append(
                f'{len(unexpected)} of its keys are not in the model, e.g. {unexpected[:3]}'
            )
        hint = ''
        if unexpected and any(k.startswith('head.') for k in unexpected) and missing:
            hint = (
                "; a classifier checkpoint? load its backbone weights with the backbone's "
                "init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.') instead"
            )
        raise CheckpointMismatchError(
            f'{source} does not fit the model ({type(model).__name__}): '
            + '; '.join(parts)
            + hint
            + ' (allow expected differences with '
            "custom_hooks=[dict(type='GPUNetCheckpointHook', allow_missing=[...], "
            'allow_unexpected=[...])])'
        )


def check_checkpoint(model: nn.Module, checkpoint: Mapping[str, Any], source: str, **kw) -> None:
    """:func:`check_state_dict` on a loaded checkpoint dict (mmengine layout or bare)."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            f'{source} holds a {type(checkpoint).__name__}, not a dict of tensors'
        )
    sd = checkpoint.get('state_dict', checkpoint)
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), Mapping) else {}
    check_state_dict(model, sd, meta, source, **kw)


@WEIGHT_INITIALIZERS.register_module(name=PRETRAINED_INIT)
class GPUNetPretrainedInit:
    """Strict pretrained loading of a GPUNet backbone (``init_cfg=dict(type='Pretrained')``).

    mmengine's ``PretrainedInit`` loads with ``strict=False``: another tier's checkpoint
    or a wrong ``prefix`` would leave the backbone random with only a log line. Here the
    checkpoint's architecture (its meta, either format: :func:`ckpt_arch`), tensor shapes
    and keys must match (the classifier tail may be absent from the backbone), else
    :class:`CheckpointMismatchError`. ``GPUNet.init_weights`` calls it by its registry name,
    so the backbone needs nothing from this package layer.
    """

    def __init__(
        self, checkpoint: str, prefix: Optional[str] = None, map_location: str = 'cpu'
    ) -> None:
        if not checkpoint:
            raise ValueError(
                f"init_cfg: got checkpoint={checkpoint!r}; allowed: Pretrained with a 'checkpoint'"
            )
        self.checkpoint = checkpoint
        self.prefix = prefix or ''
        self.map_location = map_location

    def __call__(self, module: nn.Module) -> None:
        from mmengine.runner.checkpoint import _load_checkpoint

        source = self.checkpoint
        ckpt = _load_checkpoint(source, map_location=self.map_location)
        if not isinstance(ckpt, dict):
            raise CheckpointMismatchError(f'{source} holds a {type(ckpt).__name__}, not a dict')
        sd = ckpt.get('state_dict', ckpt)
        sd = {re.sub(r'^module\.', '', k): v for k, v in sd.items()}
        prefix = self.prefix
        if prefix:
            if not prefix.endswith('.'):
                prefix += '.'
            found = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            if not found:
                raise CheckpointMismatchError(
                    f'{source} has no keys under prefix {prefix!r}; its keys start with '
                    f'{sorted({k.split(".")[0] + "." for k in sd})[:5]}'
                )
            sd = found
        meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
        # the arch recorded for the module the weights come from, as the bare backbone's
        arch = ckpt_arch(meta, prefix.rstrip('.') or 'backbone')
        meta = {META_KEY: {'': dict(name=arch[0], hash=arch[1])}} if arch else {}
        check_state_dict(module, sd, meta, source=f'pretrained checkpoint {source}')
        module.load_state_dict(sd, strict=False)


@HOOKS.register_module()
class GPUNetCheckpointHook(Hook):
    """Stores the GPUNet architecture in saved checkpoints and checks loaded ones.

    ``tools/train.py`` / ``tools/test.py`` (through :func:`gpunet_mm.apis.make_runner`) add it;
    with a plain mmengine Runner add ``custom_hooks=[dict(type='GPUNetCheckpointHook')]``.

    Args:
        allow_missing: regexes of model keys the checkpoint may lack.
        allow_unexpected: regexes of checkpoint keys the model may lack.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_missing: Sequence[str] = (), allow_unexpected: Sequence[str] = ()):
        self.allow_missing = tuple(allow_missing)
        self.allow_unexpected = tuple(allow_unexpected)

    @staticmethod
    def _model(runner) -> nn.Module:
        from mmengine.model import is_model_wrapper

        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_run(self, runner) -> None:
        """The run's ``trust_checkpoint=True`` opts in for the run (an enclosing
        ``trusted_checkpoints()`` block keeps its say)."""
        from ..safe_checkpoint import set_trust_checkpoint, trust_checkpoint_enabled

        self._trust_before = trust_checkpoint_enabled()
        set_trust_checkpoint(self._trust_before or bool(runner.cfg.get('trust_checkpoint', False)))

    def after_run(self, runner) -> None:
        from ..safe_checkpoint import set_trust_checkpoint

        set_trust_checkpoint(getattr(self, '_trust_before', False))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        archs = arch_meta(self._model(runner))
        if archs:
            checkpoint.setdefault('meta', {})[META_KEY] = archs

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        check_checkpoint(
            self._model(runner),
            checkpoint,
            source=f'checkpoint {runner._load_from or "(resumed)"}',
            allow_missing=self.allow_missing,
            allow_unexpected=self.allow_unexpected,
        )


# --------------------------------------------------------------------------- resume
def _ckpt_order(path: str) -> Tuple[int, float]:
    m = re.search(r'(?:epoch|iter)_(\d+)\.pth$', osp.basename(path))
    return (int(m.group(1)) if m else -1, osp.getmtime(path))


def resolve_resume(work_dir: str, logger: Any = 'current') -> Optional[str]:
    """The checkpoint an automatic ``--resume`` continues from, or None (with a warning).

    Takes mmengine's ``last_checkpoint`` record first, then the other ``*.pth`` files in
    ``work_dir`` from newest to oldest; an empty or truncated file (an interrupted save) is
    skipped with a warning naming it. Raises when checkpoints exist but none is usable.
    """
    from ..safe_checkpoint import checkpoint_problem

    candidates: List[str] = []
    bad: List[str] = []
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            last = f.read().strip()
        if last and osp.isfile(last):
            candidates.append(last)
        elif last:
            bad.append(f'{last} (named in {record} but missing)')
    for path in sorted(glob.glob(osp.join(work_dir, '*.pth')), key=_ckpt_order, reverse=True):
        if all(osp.abspath(path) != osp.abspath(c) for c in candidates):
            candidates.append(path)
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            if bad:
                print_log(
                    f'resume: falling back to {path}, the newest usable checkpoint; skipped '
                    + '; '.join(bad),
                    logger=logger,
                    level=logging.WARNING,
                )
            return path
        bad.append(f'{path} ({problem})')
    if bad:
        raise FileNotFoundError(
            f'--resume: no usable checkpoint in {work_dir}: '
            + '; '.join(bad)
            + '. Remove the broken files to start from scratch, or resume from a given '
            'file with --resume PATH'
        )
    print_log(
        f'resume: nothing to resume, {work_dir} holds no checkpoint; training starts from scratch',
        logger=logger,
        level=logging.WARNING,
    )
    return None


def check_resume_file(path: str) -> None:
    """An explicit ``--resume PATH`` must name a whole checkpoint."""
    from ..safe_checkpoint import checkpoint_problem

    if not osp.isfile(path):
        raise FileNotFoundError(f'--resume: checkpoint not found: {path}')
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ValueError(f'--resume: checkpoint {path} is {problem}')


__all__ = [
    'CheckpointMismatchError',
    'GPUNetCheckpointHook',
    'arch_meta',
    'check_checkpoint',
    'check_state_dict',
    'check_resume_file',
    'resolve_resume',
]
