"""The deep linear net of the lecture slides: `depth` square width x width linear layers, no activation.

The image is average-pooled to a fixed 8x8 grid and flattened (a fixed projection, no parameters, so
any image size works), a linear layer maps it to `width` units (h_0), then come the square layers:
plain, h_k = W_k h_{k-1}; residual, h_k = h_{k-1} + W_k h_{k-1}. A linear classifier reads h_depth.

With init=scaled_identity every W_k starts as alpha * I, so h_depth = alpha**depth * h_0 (plain) or
(1 + alpha)**depth * h_0 (residual): 0.5**50 is about 8.9e-16 (the signal and the gradients vanish),
1.5**50 about 6.4e8 (they explode), while a residual net with small branch weights keeps the gain near 1.
"""
from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from .family import Family
from .init import INITS
from .options import Options, choice, count, flag
from .residual import Residual

POOLED = 8  # pixels per side of the fixed pooling grid before the first linear layer


def check_depth(depth: int, **_) -> int:
    if depth < 1:
        raise ValueError(f"depth={depth} is invalid for model linear_deep; it must be >= 1 (square layers)")
    return depth


class SquareLinear(nn.Linear):
    """W h, W square and without bias: the layer init=scaled_identity starts at alpha * I."""

    square = True  # what init=scaled_identity looks for

    def __init__(self, width: int):
        super().__init__(width, width, bias=False)


class ResidualLinear(Residual):
    """h + W h: a square linear layer as the branch of an identity shortcut."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = SquareLinear(width)
        self.shortcut = nn.Identity()

    def forward(self, x):
        return self.linear(x) + self.shortcut(x)

    def residual_end(self) -> nn.Module:
        return self.linear


class LinearNet(nn.Module):
    def __init__(self, *, depth: int, width=64, num_classes=10, in_channels=3, residual=False):
        super().__init__()
        check_depth(depth)
        self.embed = nn.Linear(in_channels * POOLED * POOLED, width, bias=False)
        square = (ResidualLinear(width) if residual else SquareLinear(width) for _ in range(depth))
        self.layers = nn.Sequential(*square)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        h = self.embed(F.adaptive_avg_pool2d(x, POOLED).flatten(1))
        return self.fc(self.layers(h))

    def stages(self) -> list[nn.Sequential]:
        return [self.layers]


@dataclass
class LinearOptions(Options):
    """The deep linear net has no activation, norm or shortcut: only a width, its init and `residual`."""
    width: int = count(64, "units of every square layer")
    init: str = choice("scaled_identity", INITS, "scaled_identity: every square layer starts as init_alpha * I "
                       "(forward gain init_alpha**depth; residual: (1 + init_alpha)**depth) | kaiming_normal | ...")
    residual: bool = flag(False, "true: every square layer is a residual branch, h <- h + W h")


# The depth counts the square layers; the embedding and the classifier come on top.
LINEAR_DEEP = Family(LinearNet, check_depth, LinearOptions, default_depth=20, source="the lecture slides",
                     variants=("residual",), layers=lambda depth, **_: depth + 2)
