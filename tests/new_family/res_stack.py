"""A family written by CONTRIBUTING.md's recipe alone, for tests/test_models.py to drop into a copy of
resexp/models/ (it is not imported from here): a stem conv, one stage of n residual units of two 3x3
convs at `widen` times the width, a pool and a classifier; depth = 2n + 2."""
from dataclasses import dataclass

from torch import nn

from .family import Family, depth_rule
from .options import ConvOptions, count
from .residual import Residual, branch_end


def stack_depth(depth: int, **_) -> int:
    return depth_rule(2)(depth)


class Unit(Residual):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.shortcut = nn.Identity()

    def forward(self, x):
        return (self.bn2(self.conv2(self.bn1(self.conv1(x)).relu())) + self.shortcut(x)).relu()

    def residual_end(self) -> nn.Module:
        return branch_end([self.conv2, self.bn2])


class ResStack(nn.Module):
    def __init__(self, *, depth, num_classes, in_channels, width, activation, norm, widen):
        super().__init__()
        channels = width * widen
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.stage1 = nn.Sequential(*(Unit(channels) for _ in range(stack_depth(depth))))
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.stage1(self.conv1(x))).flatten(1))

    def stages(self) -> list[nn.Sequential]:
        return [self.stage1]


@dataclass
class ResStackOptions(ConvOptions):
    widen: int = count(2, "the stage is widen x width channels wide")


RES_STACK = Family(ResStack, stack_depth, ResStackOptions, default_depth=6, source="a test of CONTRIBUTING.md",
                   label="{widen}", variants=("widen",))
