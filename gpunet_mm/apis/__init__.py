from .checkpoint import (
    CheckpointMismatchError,
    GPUNetCheckpointHook,
    check_checkpoint,
    check_state_dict,
    resolve_resume,
)
from .runner import (
    build_model,
    check_dataset_files,
    close_process_group,
    codebase_of,
    cpu_process_group,
    cpu_threads,
    init_cpu_distributed,
    load_config,
    make_runner,
    set_cpu_threads,
)

__all__ = [
    'CheckpointMismatchError',
    'GPUNetCheckpointHook',
    'build_model',
    'check_checkpoint',
    'check_dataset_files',
    'check_state_dict',
    'close_process_group',
    'codebase_of',
    'cpu_process_group',
    'cpu_threads',
    'init_cpu_distributed',
    'load_config',
    'make_runner',
    'resolve_resume',
    'set_cpu_threads',
]
