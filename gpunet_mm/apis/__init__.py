from .runner import build_model, codebase_of, init_cpu_distributed, load_config, make_runner

__all__ = ['build_model', 'codebase_of', 'init_cpu_distributed', 'load_config', 'make_runner']
