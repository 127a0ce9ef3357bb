"""What every residual unit is, as a type the explain tools and the init ask for (never an attribute
name): y = f(h(x) + F(x)), or a gated mix of h and F (He et al. 2016, eqs. 1-2).

A unit holds its shortcut h as the module `shortcut` (an identity, a padding, a projection, a scale) and
says which layer ends its residual branch F (`residual_end`, what zero_init_residual zeroes). Everything
in it but h is F: describe does not count h in the depth, lesion replaces the unit by h, paths splits
the gradient between h and the rest.
"""
from torch import nn

from .norms import NORM_LAYERS


class Residual(nn.Module):
    shortcut: nn.Module  # h, set by the subclass

    def residual_end(self) -> nn.Module:
        """The layer that makes F(x) = 0 when its weight is zero: the last norm of F, or its last conv or
        linear layer when F has no norm (Goyal et al. 2017, sec. 5.1)."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its residual branch ends")


def branch_end(branch) -> nn.Module:
    """residual_end of a branch given as its layers in order."""
    norms = [m for m in branch if isinstance(m, NORM_LAYERS)]
    return norms[-1] if norms else [m for m in branch if isinstance(m, (nn.Conv2d, nn.Linear))][-1]


def shortcut_of(module: nn.Module) -> nn.Module | None:
    """A residual unit's shortcut h; None for any other module."""
    return module.shortcut if isinstance(module, Residual) else None
