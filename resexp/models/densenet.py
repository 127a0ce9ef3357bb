"""DenseNet for CIFAR (Huang et al. 2017, "Densely Connected Convolutional Networks", sec. 3-4).

A 3x3 conv (16 channels, or 2x the growth rate k for BC), three dense blocks of n layers with a
transition (norm-act-1x1 conv-2x2 average pool) between them, a final norm and activation, global
average pool, a linear classifier. Every layer sees the concatenation of all earlier maps of its block
and adds k new ones. A plain layer is norm-act-3x3 conv (depth L = 3n+4); the B variant puts a
norm-act-1x1 conv to 4k channels first (L = 6n+4), and C compresses each transition to `compression`
times its input channels. DenseNet (L=40, k=12): 1.0M parameters; DenseNet-BC (L=100, k=12): 0.8M
(their Table 2).
"""
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from .activations import make_activation
from .bottleneck import conv1x1
from .blocks import conv3x3
from .family import Family, depth_rule
from .norms import make_norm
from .options import ConvOptions, count, flag, real

BOTTLENECK_WIDTH = 4  # the B variant's 1x1 conv makes 4k maps (Huang et al. 2017, sec. 3)


def densenet_depth(depth: int, bottleneck: bool = False, **_) -> int:
    """depth -> layers per dense block: L = 3n+4, or 6n+4 with bottlenecks (2 convs a layer); the 4
    are the first conv, the 2 transitions and the classifier."""
    return depth_rule(6 if bottleneck else 3, offset=4)(depth)


def _norm_act_conv(conv: nn.Conv2d, norm: str, activation: str, index: int = 1) -> list:
    """(name, layer) pairs named bn1, act1, conv1 (index 1) so per-layer logs find the norms."""
    return [(f"bn{index}", make_norm(norm, conv.in_channels)),
            (f"act{index}", make_activation(activation, conv.in_channels)), (f"conv{index}", conv)]


class DenseLayer(nn.Module):
    """out = cat(x, H(x)), H = [norm-act-1x1 conv] norm-act-3x3 conv to `growth` new maps."""

    def __init__(self, in_channels: int, growth: int, bottleneck: bool, norm: str, activation: str):
        super().__init__()
        layers = []
        if bottleneck:
            layers += _norm_act_conv(conv1x1(in_channels, BOTTLENECK_WIDTH * growth), norm, activation)
            in_channels = BOTTLENECK_WIDTH * growth
        layers += _norm_act_conv(conv3x3(in_channels, growth), norm, activation, len(layers) // 3 + 1)
        self.new_features = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return torch.cat([x, self.new_features(x)], 1)


class Transition(nn.Sequential):
    """norm-act-1x1 conv-2x2 average pool between dense blocks."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, activation: str):
        super().__init__(OrderedDict(_norm_act_conv(conv1x1(in_channels, out_channels), norm, activation)
                                     + [("pool", nn.AvgPool2d(2, ceil_mode=True))]))


class DenseNet(nn.Module):
    def __init__(self, *, depth, width, num_classes, in_channels, norm, activation, growth, bottleneck,
                 compression):
        super().__init__()
        n = densenet_depth(depth, bottleneck)
        self.conv1 = conv3x3(in_channels, width)
        stages, channels = [], width
        for index in range(3):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(channels, growth, bottleneck, norm, activation))
                channels += growth
            if index < 2:
                out = int(channels * compression)
                layers.append(Transition(channels, out, norm, activation))
                channels = out
            stages.append(nn.Sequential(*layers))
        self.stage1, self.stage2, self.stage3 = stages
        self.bn_out = make_norm(norm, channels)
        self.act_out = make_activation(activation, channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.conv1(x))))
        return self.fc(self.pool(self.act_out(self.bn_out(x))).flatten(1))

    def stages(self) -> list[nn.Sequential]:
        return [self.stage1, self.stage2, self.stage3]


@dataclass
class DenseNetOptions(ConvOptions):
    """DenseNet (L=40, k=12): 1.0M parameters (Huang et al. 2017, Table 2)."""
    growth: int = count(12, "growth rate k: new maps per layer (paper: 12, 24, 40)")
    bottleneck: bool = flag(False, "B: a BN-ReLU-1x1 conv to 4k maps before each 3x3 conv")
    compression: float = real(1.0, "C: a transition keeps this fraction of its input channels (BC: 0.5)", low=0,
                              high=1, low_open=True)


@dataclass
class DenseNetBCOptions(DenseNetOptions):
    """DenseNet-BC (L=100, k=12): 0.8M parameters (Huang et al. 2017, Table 2)."""
    width: int = count(24, "channels of the first conv: 2 x growth (paper)")
    bottleneck: bool = flag(True, "B: a BN-ReLU-1x1 conv to 4k maps before each 3x3 conv")
    compression: float = real(0.5, "C: a transition keeps this fraction of its input channels", low=0, high=1,
                              low_open=True)


DENSENET_VARIANTS = ("growth", "bottleneck", "compression")
DENSENET = Family(DenseNet, densenet_depth, DenseNetOptions, default_depth=40, source="Huang et al. 2017, Table 2",
                  variants=DENSENET_VARIANTS)
DENSENET_BC = Family(DenseNet, densenet_depth, DenseNetBCOptions, default_depth=100,
                     source="Huang et al. 2017, Table 2", variants=DENSENET_VARIANTS)
