"""The shipped search configs resolve to the settings they had before their shared blocks
(``nas``, ``latency_target``, ``predictor``, space, proxy schedule) moved into the search
bases ``configs/nas/_base_/search_*.py`` (issue 18).

The snapshot ``data/search_configs_resolved.json`` was written from the configs as they
were before the bases existed, by ``python -m tests.search.test_search_configs ROOT``
(``ROOT``: a checkout of that commit); a new search config is added to it the same way.
"""

import glob
import json
import os.path as osp
import sys
from typing import Any, Dict

import pytest

from .conftest import ROOT

SNAPSHOT = osp.join(osp.dirname(__file__), 'data', 'search_configs_resolved.json')
#: the keys a search reads or a search config sets (the detector's own keys are the
#: detector config's business and may change without a search config changing)
KEYS = (
    'nas',
    'latency_target',
    'predictor',
    'search_space',
    'search_optimizer',
    'max_epochs',
    'train_cfg',
    'param_scheduler',
    'default_hooks',
    'optim_wrapper',
)
#: what the search configs set inside these (the rest is the detector config's)
LOADER_KEYS = ('num_workers', 'persistent_workers')
#: not search configs: a space/optimiser config other configs inherit
NOT_SEARCHES = ('lamcts_gpunet-det_space.py',)


def search_configs(root: str) -> Dict[str, str]:
    return {
        osp.basename(p): p
        for p in sorted(glob.glob(osp.join(root, 'configs', 'nas', '*.py')))
        if osp.basename(p) not in NOT_SEARCHES
    }


def resolved(path: str) -> Dict[str, Any]:
    """What a search takes from the config at ``path``, as JSON-like data."""
    from mmengine.config import Config

    from gpunet_mm.schema import plain

    cfg = Config.fromfile(path).to_dict()
    out = {k: cfg.get(k) for k in KEYS}
    for k in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        out[k] = {n: (cfg.get(k) or {}).get(n) for n in LOADER_KEYS}
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    out['model.backbone'] = {n: backbone.get(n) for n in ('frozen_stages', 'norm_eval')}
    return json.loads(json.dumps(plain(out), sort_keys=True))


def snapshot(root: str) -> Dict[str, Dict[str, Any]]:
    return {name: resolved(path) for name, path in search_configs(root).items()}


def test_every_shipped_search_config_is_in_the_snapshot():
    with open(SNAPSHOT) as f:
        assert sorted(json.load(f)) == sorted(search_configs(ROOT))


@pytest.mark.parametrize('name', sorted(search_configs(ROOT)))
def test_search_config_resolves_as_before_the_bases(name):
    with open(SNAPSHOT) as f:
        before = json.load(f)[name]
    after = resolved(search_configs(ROOT)[name])
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    assert not changed, f'{name}: {changed} differ: {[(before[k], after.get(k)) for k in changed]}'


def test_the_search_bases_are_inherited():
    """Every detection search config takes its shared blocks from a search base, directly
    or through another shipped search config (a variant such as the full-fidelity demo)."""
    configs = search_configs(ROOT)
    for name, path in configs.items():
        if 'demo-cls' in name:  # the classification search: its own target and schedule
            continue
        with open(path) as f:
            text = f.read()
        via = [o for o in configs if o != name and f"'./{o}'" in text and 'demo-cls' not in o]
        assert "'./_base_/search_" in text or via, name
        assert 'latency_target' not in text and 'predictor' not in text, name


if __name__ == '__main__':  # python -m tests.search.test_search_configs ROOT > snapshot
    json.dump(snapshot(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')
