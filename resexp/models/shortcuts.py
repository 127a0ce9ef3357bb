"""Shortcut connections.

Where dimensions change (`shortcut`, He et al. 2015, sec. 3.3 and Table 3; He et al. 2019, "Bag of
Tricks", Fig. 2c):
A: identity; where the map halves and channels grow, subsample by 2 and zero-pad the new
   channels (no parameters).
B: identity, but a 1x1 conv + norm projection where dimensions change (the norm is left out with
   `projection_norm=false`, as in the official pre-activation ResNet-164/1001, resnet-pre-act.lua).
C: a projection on every block.
A_pool: as A, but a 2x2 average pool instead of dropping 3 of every 4 pixels (no parameters).
D: as B, but a 2x2 average pool, then a stride-1 projection (ResNet-D), so no input pixel is ignored.

What the shortcut does where dimensions stay (`shortcut_kind`, He et al. 2016, "Identity Mappings",
Fig. 2 and Table 1): identity; scaling by a constant; a 1x1 conv (as C); dropout. The gated kinds
(exclusive_gating, shortcut_gating) keep the identity here and gate it in the unit (gates.py).
"""
import torch.nn.functional as F
from torch import nn

from .norms import make_norm


class PadShortcut(nn.Module):
    """Option A where dimensions change: stride-2 subsample (or average pool), zero-padded channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, pool: bool = False):
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride
        self.pool = pool

    def forward(self, x):
        if self.pool and self.stride > 1:
            x = F.avg_pool2d(x, self.stride, ceil_mode=True)
        else:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class Projection(nn.Sequential):
    """Options B and C: 1x1 conv (with the block's stride) followed by the norm layer."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            make_norm(norm, out_channels),
        )


class PoolProjection(nn.Sequential):
    """Option D: 2x2 average pool, then a stride-1 1x1 conv and the norm layer."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__(
            nn.AvgPool2d(stride, ceil_mode=True) if stride > 1 else nn.Identity(),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            make_norm(norm, out_channels),
        )


class Scale(nn.Module):
    """Multiplication by a constant: on the shortcut (He et al. 2016, Fig. 2b: 0.5 fails to train
    ResNet-110) and, as the last layer of the residual branch F, on F (0.5 on both: "frozen gating", 12.35%)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * x

    def extra_repr(self):
        return f"scale={self.scale}"


SHORTCUTS = ("A", "B", "C", "A_pool", "D")
SHORTCUT_KINDS = ("identity", "scaling", "exclusive_gating", "shortcut_gating", "conv1x1", "dropout")
GATED = ("exclusive_gating", "shortcut_gating")


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int, norm: str,
                  shortcut_kind: str = "identity", scale: float | None = None, dropout: float | None = None) -> nn.Module:
    changes = stride != 1 or in_channels != out_channels
    if kind == "C" or (kind == "B" and changes) or (shortcut_kind == "conv1x1" and not changes):
        return Projection(in_channels, out_channels, stride, norm)
    if kind == "D" and changes:
        return PoolProjection(in_channels, out_channels, stride, norm)
    if kind in ("A", "A_pool") and changes:
        return PadShortcut(in_channels, out_channels, stride, pool=kind == "A_pool")
    if kind not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {kind!r}; choose one of {', '.join(SHORTCUTS)}")
    if shortcut_kind == "scaling":
        return Scale(scale)
    if shortcut_kind == "dropout":
        return nn.Dropout(dropout)
    return nn.Identity()
