"""The CIFAR networks of He et al. 2015, sec. 4.2.

A 3x3 conv with `width` channels, three stages of n blocks at width, 2x and 4x width (the first
block of stages 2 and 3 halves the map), global average pool, a linear classifier: depth = 6n+2.
"""
from torch import nn

from .activations import make_activation
from .blocks import BasicBlock, PlainBlock, conv3x3
from .norms import make_norm
from .shortcuts import make_shortcut


def blocks_per_stage(depth: int) -> int:
    """n for depth = 6n+2; raises ValueError naming the nearest valid depths."""
    n, rest = divmod(depth - 2, 6)
    if n >= 1 and rest == 0:
        return n
    nearest = sorted({max(8, 6 * n + 2), max(8, 6 * n + 8)})
    raise ValueError(f"depth={depth} is not of the form 6n+2 with n >= 1; nearest valid depths: "
                     + ", ".join(map(str, nearest)))


class CifarNet(nn.Module):
    def __init__(self, residual: bool, depth: int, shortcut="A", activation="relu", width=16,
                 num_classes=10, in_channels=3, norm="batch"):
        super().__init__()
        n = blocks_per_stage(depth)
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = make_norm(norm, width)
        self.act1 = make_activation(activation)
        stages, channels = [], width
        for index, out_channels in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for b in range(n):
                stride = 2 if index > 0 and b == 0 else 1
                if residual:
                    sc = make_shortcut(shortcut, channels, out_channels, stride, norm)
                    blocks.append(BasicBlock(channels, out_channels, stride, sc, norm, activation))
                else:
                    blocks.append(PlainBlock(channels, out_channels, stride, norm, activation))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.pool(x).flatten(1))
