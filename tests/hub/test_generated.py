"""Metafiles and the model-zoo page are what the hub generates; every listed config builds."""

import os

import pytest
import yaml
from mmengine.config import Config

from gpunet_mm.apis import build_model, codebase_of
from gpunet_mm.hub.configs import repo_root
from gpunet_mm.hub.generate import MODEL_ZOO_PAGE, render_metafiles, render_model_zoo

ROOT = repo_root()


def read(rel):
    with open(os.path.join(ROOT, rel), encoding='utf-8') as f:
        return f.read()


@pytest.mark.parametrize('rel', sorted(render_metafiles()))
def test_committed_metafile_equals_generated(rel):
    assert read(rel) == render_metafiles()[rel], (
        f'{rel} differs from the hub: run tools/misc/gen_metafiles.py'
    )


def test_model_zoo_page_equals_generated():
    assert read(MODEL_ZOO_PAGE) == render_model_zoo(), (
        'docs/model_zoo.md differs from the hub: run tools/misc/gen_model_zoo.py'
    )


def _models():
    from modelindex import load

    index = load(os.path.join(ROOT, 'model-index.yml'))
    return index


def test_model_index_loads_and_lists_every_config():
    index = _models()
    errors = [e for e in index.check(silent=True) if 'README' not in e]
    assert errors == []
    listed = sorted(m.config for m in index.models)
    shipped = sorted(
        f'configs/{d}/{n}'
        for d in ('gpunet', 'gpunet_det')
        for n in os.listdir(os.path.join(ROOT, 'configs', d))
        if n.endswith('.py')
    )
    assert listed == shipped
    for c in index.collections:
        assert os.path.isfile(os.path.join(ROOT, c.readme))
    cls = [m for m in index.models if m.config.startswith('configs/gpunet/')]
    assert len(cls) == 7 and all(m.results[0].metrics['Top 1 Accuracy'] > 78 for m in cls)


@pytest.mark.parametrize(
    'config',
    sorted(
        m['Config']
        for rel in ('configs/gpunet/metafile.yml', 'configs/gpunet_det/metafile.yml')
        for m in yaml.safe_load(read(rel))['Models']
    ),
)
def test_every_listed_config_builds(config):
    cfg = Config.fromfile(os.path.join(ROOT, config))
    model = build_model(cfg.model, codebase_of(cfg))
    assert type(model).__name__ in ('ImageClassifier', 'RetinaNet', 'FCOS')
