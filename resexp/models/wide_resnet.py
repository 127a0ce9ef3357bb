"""Wide residual networks for CIFAR (Zagoruyko and Komodakis 2016, "Wide Residual Networks", sec. 2, Table 1).

WRN-d-k: a 3x3 conv with 16 channels, three stages of n pre-activation blocks (BN-ReLU-3x3 conv, BN-ReLU,
dropout, 3x3 conv) at 16k, 32k and 64k channels (the first block of stages 2 and 3 halves the map), a
final BN-ReLU, global average pool, a linear classifier. A block whose input and output differ in shape
takes a 1x1 conv as its shortcut, so each stage's first block has one; the paper counts those 3 convs in
the depth, d = 6n + 4. WRN-28-10 has 36.5M parameters, WRN-16-4 2.7M.
"""
from dataclasses import dataclass

from torch import nn

from .activations import make_activation
from .blocks import conv3x3, make_stages
from .branch import BRANCH_SCALING, Bias, BiasedLinear, Multiplier, check_combination, multiplier
from .family import Family, depth_rule
from .norms import make_norm
from .options import ConvOptions, choice, count, real
from .residual import Residual, branch_end


def wide_depth(depth: int, **_) -> int:
    return depth_rule(6, offset=4)(depth)


class WideBlock(Residual):
    """out = scale(conv2(dropout(act(bn2(conv1(act(bn1(x)))))))) + shortcut(x) (the paper's Fig. 1d), `scale`
    what model.branch_scaling multiplies F by (branch.py; nothing by default)."""

    def __init__(self, in_channels, out_channels, stride, norm: str, activation: str, dropout: float,
                 scale: nn.Module):
        super().__init__()
        self.bn1, self.act1 = make_norm(norm, in_channels), make_activation(activation, in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2, self.act2 = make_norm(norm, out_channels), make_activation(activation, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.scale = scale
        same = in_channels == out_channels and stride == 1
        self.shortcut = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x):
        out = self.conv1(self.act1(self.bn1(x)))
        return self.scale(self.conv2(self.dropout(self.act2(self.bn2(out))))) + self.shortcut(x)

    def residual_end(self) -> nn.Module:
        return branch_end([self.bn2, self.conv2])


class FixupWideBlock(WideBlock):
    """The block without norms, with Fixup's scalars (Zhang et al. 2019, sec. 3, rule 3): a bias before each
    activation and conv, a multiplier on F (init.py scales and zeroes the convs):
    out = m conv2(b4 + dropout(act(b3 + conv1(b2 + act(b1 + x))))) + shortcut(x)."""

    def __init__(self, in_channels, out_channels, stride, activation: str, dropout: float):
        super().__init__(in_channels, out_channels, stride, "none", activation, dropout, Multiplier(1.0))
        self.bias1, self.bias2, self.bias3, self.bias4 = Bias(), Bias(), Bias(), Bias()

    def forward(self, x):
        out = self.conv1(self.bias2(self.act1(self.bias1(x))))
        return self.scale(self.conv2(self.bias4(self.dropout(self.act2(self.bias3(out)))))) + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, *, depth, width, num_classes, in_channels, norm, activation, widen, dropout,
                 branch_scaling):
        super().__init__()
        n = wide_depth(depth)
        fixup = branch_scaling == "fixup"

        def block(index, channels, stride):
            out = width * widen * 2 ** index
            if fixup:
                return FixupWideBlock(channels, out, stride, activation, dropout), out
            return WideBlock(channels, out, stride, norm, activation, dropout, multiplier(branch_scaling, 3 * n)), out
        self.conv1 = conv3x3(in_channels, width)
        stages, channels = make_stages((n, n, n), width, block)
        self.stage1, self.stage2, self.stage3 = stages
        # Fixup: a scalar bias where the last norm would be, and one before the classifier
        self.bn_out = Bias() if fixup else make_norm(norm, channels)
        self.act_out = make_activation(activation, channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = (BiasedLinear if fixup else nn.Linear)(channels, num_classes)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.conv1(x))))
        return self.fc(self.pool(self.act_out(self.bn_out(x))).flatten(1))

    def stages(self) -> list[nn.Sequential]:
        return [self.stage1, self.stage2, self.stage3]


@dataclass
class WideOptions(ConvOptions):
    """WRN-d-k (Zagoruyko and Komodakis 2016): depth 6n+4, stages k times wider than ResNet's."""
    widen: int = count(10, "k: the stages are 16k, 32k, 64k channels wide (paper's best on CIFAR: WRN-28-10)")
    dropout: float = real(0.0, "drop probability between a block's two convs (paper: 0.3 on CIFAR)", low=0,
                          high=1, high_open=True)
    branch_scaling: str = choice(**BRANCH_SCALING)

    @staticmethod
    def combined(values: dict) -> None:
        check_combination(values)


# WRN-28-10 is the paper's CIFAR net (Tables 4-6); its depth counts the 3 shortcut convs, the main path has d - 2.
WIDE_RESNET = Family(WideResNet, wide_depth, WideOptions, default_depth=28,
                     source="Zagoruyko and Komodakis 2016, Table 1", label="{widen}",
                     variants=("widen", "dropout", "branch_scaling"),
                     layers=lambda depth, **_: depth - 2)
