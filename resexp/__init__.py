"""resexp: depth and degradation experiments with plain and residual networks."""
__all__ = ["build_model", "count_parameters"]


def __getattr__(name):
    """`from resexp import build_model` imports the models (and torch) then; `import resexp.cli` does not."""
    if name in __all__:
        from . import models
        return getattr(models, name)
    raise AttributeError(f"module 'resexp' has no attribute {name!r}")
