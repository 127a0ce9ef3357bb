"""The ImageNet networks of He et al. 2015, Table 1: plain-18/34 and ResNet-18/34/50/101/152.

A 7x7/2 conv with `width` channels and a 3x3/2 max-pool (the stem), four stages at width, 2x, 4x
and 8x width (the first block of stages 2-4 halves the map), global average pool, a linear
classifier. 18 and 34 use basic blocks, 50 and deeper bottleneck blocks with 4x expansion.
"""
from dataclasses import dataclass
from functools import partial

from torch import nn

from .activations import make_activation
from .blocks import BasicBlock, PlainBlock, make_stages
from .bottleneck import EXPANSION, Bottleneck
from .family import Family, depth_table
from .norms import make_norm
from .options import ConvOptions, choice, count, flag
from .shortcuts import SHORTCUTS, make_shortcut

# depth -> (block kind, blocks per stage), He et al. 2015, Table 1.
RESNET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
# The paper trains plain nets only with basic blocks (Table 2, Fig. 4).
PLAIN_DEPTHS = {d: RESNET_DEPTHS[d] for d in (18, 34)}


check_resnet_depth = depth_table(RESNET_DEPTHS, "imagenet_resnet")
check_plain_depth = depth_table(PLAIN_DEPTHS, "imagenet_plain")


def _block(kind, residual, in_channels, width, stride, shortcut, norm, activation):
    """One block and its output channels."""
    if kind == "bottleneck":
        out = EXPANSION * width
        sc = make_shortcut(shortcut, in_channels, out, stride, norm)
        return Bottleneck(in_channels, width, stride, sc, norm, activation), out
    if residual:
        sc = make_shortcut(shortcut, in_channels, width, stride, norm)
        return BasicBlock(in_channels, width, stride, sc, norm, activation), width
    return PlainBlock(in_channels, width, stride, norm, activation), width


class ImageNetNet(nn.Module):
    def __init__(self, residual: bool, *, depth: int, shortcut="B", activation="relu", width=64,
                 num_classes=1000, in_channels=3, norm="batch"):
        super().__init__()
        kind, counts = (check_resnet_depth if residual else check_plain_depth)(depth)
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, width)
        self.act1 = make_activation(activation, width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, channels = make_stages(counts, width, lambda index, channels, stride: _block(
            kind, residual, channels, width * 2 ** index, stride, shortcut, norm, activation))
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return self.fc(self.pool(x).flatten(1))

    def stages(self) -> list[nn.Sequential]:
        return [self.stage1, self.stage2, self.stage3, self.stage4]


@dataclass
class ImageNetPlainOptions(ConvOptions):
    """He et al. 2015's ImageNet plain nets (Table 1, Fig. 3 middle), 18 and 34 layers."""
    width: int = count(64, "channels of the first stage; stages use width, 2x, 4x, 8x (paper: 64)")


@dataclass
class ImageNetResNetOptions(ImageNetPlainOptions):
    """He et al. 2015's ImageNet ResNets (Table 1), 18 to 152 layers."""
    shortcut: str = choice("B", SHORTCUTS, "the paper's choice for 50/101/152 (sec. 4.1); A and C also work")
    zero_init_residual: bool = flag(False, "the last norm of every residual branch starts at 0")


# 34 layers: the depth of He et al. 2015's plain/residual comparison (Table 2, Fig. 4) and shortcut study (Table 3).
IMAGENET_PLAIN = Family(partial(ImageNetNet, False), check_plain_depth, ImageNetPlainOptions, default_depth=34,
                        source="He et al. 2015, Tables 1-2")
IMAGENET_RESNET = Family(partial(ImageNetNet, True), check_resnet_depth, ImageNetResNetOptions, default_depth=34,
                         source="He et al. 2015, Tables 1-3", label="{shortcut}")
