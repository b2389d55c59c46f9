"""The GPUNet model hub: the most accurate network under your latency on your device.

The paper's product is a table of networks tiered by deployed latency. The hub holds that
table as rows of (model, measurement target, accuracy), each with its provenance: the
published tiers (``paper``, read from :mod:`gpunet_mm.models.tiers`), rows measured by
``benchmarks/benchmark_hub.py`` (``measured``: tool, date, environment) and NAS results
(``search``: work_dir, trial id, journal hash). Your own rows go to a user hub file that is
merged with the shipped table and written atomically.

    >>> from gpunet_mm import hub
    >>> hub.query(device='A100', latency_ms=1.0, task='cls').name
    'GPUNet-D1'
    >>> [e.name for e in hub.pareto(device='V100', task='cls')]
    ['GPUNet-P0', 'GPUNet-1', 'GPUNet-P1', 'GPUNet-D1', 'GPUNet-D2']

Every function takes ``path=`` (the user hub file; default ``$GPUNET_MM_HUB`` or
``~/.cache/gpunet_mm/hub.jsonl``). The command line is ``tools/hub.py``. Queries mean this
machine's devices unless told another; rows scored on toy data or by a simulated search
answer only when asked for (``include_toy=True``).
"""

from __future__ import annotations

from typing import Any, List, Optional

from .conditions import FIELDS, OPERATORS, Condition, parse_conditions, sort_entries
from .entry import (
    CAVEATS,
    HubEntry,
    HubError,
    Provenance,
    device_matches,
    local_devices,
    normalize_device,
)
from .hub import (
    Answer,
    BudgetError,
    ModelHub,
    NameConflictError,
    OtherDeviceWarning,
    UnknownDeviceError,
    default_hub_file,
)
from .search_import import RESULTS_FILE, search_entries
from .store import HubFileError, read_entries, write_entries


def list_models(path: Optional[str] = None, **filters: Any) -> List[HubEntry]:
    """Rows matching ``task``, ``device``, ``backend``, ``precision``, ``batch`` ..."""
    return ModelHub(path).list_models(**filters)


def query(
    device: Optional[str], latency_ms: float, path: Optional[str] = None, **filters: Any
) -> HubEntry:
    """The most accurate row within ``latency_ms`` on ``device`` (ties: faster, smaller).

    ``device`` None, ``'cpu'`` or ``'gpu'``: this machine's; an answer measured on another
    device warns (:class:`OtherDeviceWarning`). Rows with caveats (simulated, toy data)
    answer only with ``include_toy=True``.
    """
    return ModelHub(path).query(device, latency_ms, **filters)


def remove(name: str, path: Optional[str] = None, **filters: Any) -> List[HubEntry]:
    """Remove the user hub file's rows of ``name`` (``device``/``backend``/``provenance``)."""
    return ModelHub(path).remove(name, **filters)


def pareto(path: Optional[str] = None, **filters: Any) -> List[HubEntry]:
    """The non-dominated rows (latency vs accuracy) of each comparable target."""
    return ModelHub(path).pareto(**filters)


def get(name: str, path: Optional[str] = None) -> List[HubEntry]:
    """Every row of the model ``name``."""
    return ModelHub(path).get(name)


def get_config(name: str, out_file: Optional[str] = None, path: Optional[str] = None):
    """A ready mmdet / mmpretrain config of ``name`` (optionally written to ``out_file``)."""
    return ModelHub(path).get_config(name, out_file)


def add(entry, replace: bool = False, path: Optional[str] = None) -> HubEntry:
    """Add a row to the user hub file (refuses conflicts unless ``replace``)."""
    return ModelHub(path).add(entry, replace=replace)


def import_search(
    work_dir: str,
    include_pareto: bool = False,
    replace: bool = False,
    path: Optional[str] = None,
    device: Optional[str] = None,
    allow_simulated: bool = False,
) -> List[HubEntry]:
    """Add the winners of a NAS run (``WORK_DIR/results.json``) to the user hub file."""
    return ModelHub(path).import_search(work_dir, include_pareto, replace, device, allow_simulated)


__all__ = [
    'CAVEATS',
    'FIELDS',
    'OPERATORS',
    'RESULTS_FILE',
    'Answer',
    'BudgetError',
    'Condition',
    'HubEntry',
    'HubError',
    'HubFileError',
    'ModelHub',
    'NameConflictError',
    'OtherDeviceWarning',
    'Provenance',
    'UnknownDeviceError',
    'add',
    'default_hub_file',
    'device_matches',
    'get',
    'get_config',
    'import_search',
    'list_models',
    'local_devices',
    'normalize_device',
    'pareto',
    'parse_conditions',
    'query',
    'read_entries',
    'remove',
    'search_entries',
    'sort_entries',
    'write_entries',
]
