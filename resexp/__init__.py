"""resexp: depth and degradation experiments with plain and residual networks.

From Python (docs/python.md): `load_runs` and `load_curves` read run directories into pandas tables,
`run` and `run_sweep` run what `resexp train` runs. Each is imported on first use, so `import resexp` stays
light (no torch, no pandas) until one is called.
"""
from importlib import import_module

# name -> the module that defines it
_EXPORTS = {"build_model": "models", "count_parameters": "models", "load_runs": "frames", "load_curves": "frames",
            "run": "api", "run_sweep": "api"}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'resexp' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
