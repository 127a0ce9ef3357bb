"""Average pooling to a fixed size whose CUDA backward is deterministic.

torch's AdaptiveAvgPool2d has no deterministic CUDA backward unless the output is 1x1 (then torch
takes a mean): with `deterministic=true` its first backward on a GPU raises. Where the input
divides evenly into the output (or the output into the input) a plain average pool (or a repeat)
gives the same numbers with deterministic kernels."""
import torch.nn.functional as F
from torch import nn


class AvgPoolTo(nn.Module):
    """nn.AdaptiveAvgPool2d(size) for square inputs: (N, C, H, W) -> (N, C, size, size)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x):
        side, size = x.shape[-1], self.size
        if x.shape[-2] != side:
            return F.adaptive_avg_pool2d(x, size)
        if side % size == 0:
            return F.avg_pool2d(x, side // size) if side > size else x
        if size % side == 0:  # a small image: each input pixel becomes a block of the output
            return x.repeat_interleave(size // side, dim=2).repeat_interleave(size // side, dim=3)
        return F.adaptive_avg_pool2d(x, size)

    def extra_repr(self) -> str:
        return f"size={self.size}"
