from .runner import codebase_of, init_cpu_distributed, load_config, make_runner

__all__ = ['codebase_of', 'init_cpu_distributed', 'load_config', 'make_runner']
