"""resexp: depth and degradation experiments with plain and residual networks."""
from .models import build_model, count_parameters

__all__ = ["build_model", "count_parameters"]
