"""CIFAR networks of bottleneck blocks, depth 9n+2 (He et al. 2016, "Identity Mappings", sec. 4).

The CIFAR layout of He et al. 2015, sec. 4.2 (a 3x3 conv with `width` channels, three stages,
average pool, linear), but each stage holds n bottleneck blocks of width, 2x and 4x width, with
4x expansion: ResNet-164 is n = 18, 1.7M parameters.
"""
from torch import nn

from .activations import make_activation
from .blocks import conv3x3
from .bottleneck import EXPANSION, Bottleneck
from .norms import make_norm
from .shortcuts import make_shortcut


def bottleneck_blocks_per_stage(depth: int) -> int:
    """n for depth = 9n+2; raises ValueError naming the nearest valid depths."""
    n, rest = divmod(depth - 2, 9)
    if n >= 1 and rest == 0:
        return n
    nearest = sorted({max(11, 9 * n + 2), max(11, 9 * n + 11)})
    raise ValueError(f"depth={depth} is not of the form 9n+2 with n >= 1; nearest valid depths: "
                     + ", ".join(map(str, nearest)))


class CifarBottleneckNet(nn.Module):
    def __init__(self, depth: int, shortcut="B", activation="relu", width=16, num_classes=10,
                 in_channels=3, norm="batch"):
        super().__init__()
        n = bottleneck_blocks_per_stage(depth)
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = make_norm(norm, width)
        self.act1 = make_activation(activation)
        stages, channels = [], width
        for index in range(3):
            blocks, inner = [], width * 2 ** index
            for b in range(n):
                stride = 2 if index > 0 and b == 0 else 1
                sc = make_shortcut(shortcut, channels, EXPANSION * inner, stride, norm)
                blocks.append(Bottleneck(channels, inner, stride, sc, norm, activation))
                channels = EXPANSION * inner
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.pool(x).flatten(1))
