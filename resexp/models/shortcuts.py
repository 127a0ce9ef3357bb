"""Shortcut connections of He et al. 2015, sec. 3.3 and Table 3.

A: identity; where the map halves and channels grow, subsample by 2 and zero-pad the new
   channels (no parameters).
B: identity, but a 1x1 conv + norm projection where dimensions change.
C: a projection on every block.
"""
import torch.nn.functional as F
from torch import nn

from .norms import make_norm


class PadShortcut(nn.Module):
    """Option A where dimensions change: stride-2 subsample, zero-padded channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class Projection(nn.Sequential):
    """Options B and C: 1x1 conv (with the block's stride) followed by the norm layer."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            make_norm(norm, out_channels),
        )


SHORTCUTS = ("A", "B", "C")


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int, norm: str) -> nn.Module:
    changes = stride != 1 or in_channels != out_channels
    if kind == "C" or (kind == "B" and changes):
        return Projection(in_channels, out_channels, stride, norm)
    if kind == "A" and changes:
        return PadShortcut(in_channels, out_channels, stride)
    if kind in SHORTCUTS:
        return nn.Identity()
    raise ValueError(f"unknown shortcut {kind!r}; choose one of {', '.join(SHORTCUTS)}")
