"""ResNeXt for CIFAR (Xie et al. 2017, "Aggregated Residual Transformations", sec. 5.3).

A 3x3 conv with `width` (64) channels, three stages of n bottleneck blocks (depth 9n+2; ResNeXt-29 is
n = 3) whose outputs are 4x width, 8x, 16x (256, 512, 1024), a global average pool, a linear classifier.
Each block's 3x3 conv is split into `cardinality` groups of `base_width` channels at stage 1, doubled
per stage ("C x d", Fig. 3c form). ResNeXt-29 8x64d has 34.4M parameters, 16x64d 68.1M (their Table 7).
"""
from dataclasses import dataclass

from torch import nn

from .activations import make_activation
from .blocks import conv3x3, make_stages
from .bottleneck import EXPANSION, Bottleneck
from .family import Family, depth_rule
from .norms import make_norm
from .options import ConvOptions, choice, count, flag
from .shortcuts import SHORTCUTS, make_shortcut



def resnext_depth(depth: int, **_) -> int:
    return depth_rule(9)(depth)


class ResNeXt(nn.Module):
    def __init__(self, *, depth, width, num_classes, in_channels, norm, activation, shortcut, cardinality,
                 base_width):
        super().__init__()
        n = resnext_depth(depth)
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = make_norm(norm, width)
        self.act1 = make_activation(activation, width)
        def block(index, channels, stride):
            inner, out = cardinality * base_width * 2 ** index, EXPANSION * width * 2 ** index
            return Bottleneck(channels, inner, stride, make_shortcut(shortcut, channels, out, stride, norm), norm,
                              activation, groups=cardinality, out_channels=out), out
        stages, channels = make_stages((n, n, n), width, block)
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.pool(x).flatten(1))

    def stages(self) -> list[nn.Sequential]:
        return [self.stage1, self.stage2, self.stage3]


@dataclass
class ResNeXtOptions(ConvOptions):
    """ResNeXt for CIFAR (Xie et al. 2017, sec. 5.3), depth 9n+2."""
    width: int = count(64, "channels of the first conv; stages output 4x, 8x, 16x width (256, 512, 1024)")
    shortcut: str = choice("B", SHORTCUTS, "projections where dimensions change (the paper's, as ResNet's B)")
    cardinality: int = count(8, "C: groups of the 3x3 conv (paper: 8 or 16)")
    base_width: int = count(64, "d: channels per group at stage 1, doubled per stage (paper: 64)")
    zero_init_residual: bool = flag(False, "the last norm of every residual branch starts at 0")


RESNEXT = Family(ResNeXt, resnext_depth, ResNeXtOptions, default_depth=29, source="Xie et al. 2017, Table 7",
                 label="{cardinality}x{base_width}d", variants=("cardinality", "base_width"))
