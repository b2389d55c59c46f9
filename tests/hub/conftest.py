import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NAS_RUN = os.path.join(HERE, 'data', 'nas_det_demo')


@pytest.fixture(autouse=True)
def _no_home_hub(tmp_path, monkeypatch):
    """No test reads or writes the user's ~/.cache hub: the default points into tmp_path."""
    monkeypatch.setenv('GPUNET_MM_HUB', str(tmp_path / 'default_hub.jsonl'))


@pytest.fixture
def hub_file(tmp_path):
    return str(tmp_path / 'hub.jsonl')
