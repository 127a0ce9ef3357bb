"""The CIFAR networks of He et al. 2015, sec. 4.2, and their bottleneck variant (He et al. 2016).

A 3x3 conv with `width` channels, three stages of n blocks at width, 2x and 4x width (the first
block of stages 2 and 3 halves the map), global average pool, a linear classifier. With two 3x3
layers a block, depth = 6n+2 (plain and resnet); with 1x1-3x3-1x1 bottlenecks of 4x expansion,
depth = 9n+2 (resnet_bottleneck; ResNet-164 is n = 18, 1.7M parameters).
"""
from torch import nn

from .activations import make_activation
from .blocks import BasicBlock, PlainBlock, conv3x3
from .bottleneck import EXPANSION, Bottleneck
from .norms import make_norm
from .shortcuts import make_shortcut

LAYERS_PER_BLOCK = {"plain": 2, "basic": 2, "bottleneck": 3}


def stage_rule(block: str):
    """The depth check of a block kind: depth -> n for depth = 3 * layers_per_block * n + 2, or a
    ValueError naming the nearest valid depths."""
    step = 3 * LAYERS_PER_BLOCK[block]

    def blocks_per_stage(depth: int) -> int:
        n, rest = divmod(depth - 2, step)
        if n >= 1 and rest == 0:
            return n
        nearest = sorted({max(step + 2, step * n + 2), step * max(1, n + 1) + 2})
        raise ValueError(f"depth={depth} is not of the form {step}n+2 with n >= 1; nearest valid depths: "
                         + ", ".join(map(str, nearest)))
    return blocks_per_stage


def make_block(block, in_channels, stage_width, stride, shortcut, norm, activation):
    """(block module, its output channels) for one block of a stage `stage_width` wide."""
    if block == "plain":
        return PlainBlock(in_channels, stage_width, stride, norm, activation), stage_width
    out_channels = stage_width * (EXPANSION if block == "bottleneck" else 1)
    sc = make_shortcut(shortcut, in_channels, out_channels, stride, norm)
    if block == "bottleneck":
        return Bottleneck(in_channels, stage_width, stride, sc, norm, activation), out_channels
    return BasicBlock(in_channels, out_channels, stride, sc, norm, activation), out_channels


class CifarNet(nn.Module):
    def __init__(self, block: str, depth: int, shortcut="A", activation="relu", width=16,
                 num_classes=10, in_channels=3, norm="batch"):
        super().__init__()
        n = stage_rule(block)(depth)
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = make_norm(norm, width)
        self.act1 = make_activation(activation)
        stages, channels = [], width
        for index in range(3):
            blocks = []
            for b in range(n):
                stride = 2 if index > 0 and b == 0 else 1
                module, channels = make_block(block, channels, width * 2 ** index, stride, shortcut, norm,
                                              activation)
                blocks.append(module)
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.pool(x).flatten(1))
