"""The CIFAR networks of He et al. 2015, sec. 4.2, and their variants (He et al. 2016; highway).

A 3x3 conv with `width` channels, three stages of n blocks at width, 2x and 4x width (the first
block of stages 2 and 3 halves the map), global average pool, a linear classifier. With `skip`
3x3 layers a block (2 in the paper), depth = 3*skip*n + 2 (plain and resnet: 6n+2); with 1x1-3x3-1x1
bottlenecks of 4x expansion, depth = 9n+2 (ResNet-164 is n = 18, 1.7M parameters).

Pre-activation nets (He et al. 2016) have no norm or activation after the first conv (each unit
starts with its own) and a final norm and activation before the pool.
"""
from dataclasses import dataclass
from functools import partial

from torch import nn

from .activations import make_activation
from .branch import BRANCH_SCALING, Bias, BiasedLinear, check_combination, scale_branch
from .blocks import BasicBlock, PlainBlock, conv3x3, make_stages
from .bottleneck import EXPANSION, Bottleneck, conv1x1
from .family import Family, depth_rule
from .gates import ExclusiveGatedUnit, Gate, ShortcutGatedUnit
from .norms import make_norm
from .options import ConvOptions, choice, flag, real
from .orders import ORDERS, ResidualUnit, after_addition, residual_branch
from .shortcuts import SHORTCUT_KINDS, SHORTCUTS, make_shortcut


def cifar_depth(block: str):
    """The depth check of a block kind; basic and plain blocks hold `skip` convs, bottlenecks 3."""
    def check(depth: int, skip: int = 2, **_) -> int:
        return depth_rule(3 * (3 if block == "bottleneck" else skip))(depth)
    return check


def _convs(block, in_channels, width, out_channels, stride, skip, groups=1):
    if block == "bottleneck":
        return [conv1x1(in_channels, width), conv3x3(width, width, stride, groups), conv1x1(width, out_channels)]
    return [conv3x3(in_channels, out_channels, stride)] + [conv3x3(out_channels, out_channels)
                                                          for _ in range(skip - 1)]


def make_block(block, in_channels, stage_width, stride, *, norm, activation, skip=2, units=1, **residual):
    """(block module, its output channels) for one block of a stage `stage_width` wide; a residual block
    takes every option of ResidualOptions (a missing one is a TypeError naming it) and the net's number of
    residual units (what branch_scaling=depth scales by)."""
    if block == "plain":
        if skip == 2:
            return PlainBlock(in_channels, stage_width, stride, norm, activation), stage_width
        convs = _convs(block, in_channels, stage_width, stage_width, stride, skip)
        return residual_branch("relu_before_add", convs, norm, activation), stage_width
    return residual_block(block, in_channels, stage_width, stride, norm=norm, activation=activation, skip=skip,
                          units=units, **residual)


def residual_block(block, in_channels, stage_width, stride, *, norm, activation, skip, shortcut, block_order,
                   shortcut_kind, shortcut_scale, shortcut_dropout, gate_bias, residual_scale, projection_norm,
                   branch_scaling, units):
    """The paper's own blocks (original order, identity-like shortcuts, 2 convs, F unscaled) are the
    classic classes; every other combination is a unit of orders.py or gates.py around the same convs,
    F scaled as branch.py says."""
    out_channels = stage_width * (EXPANSION if block == "bottleneck" else 1)
    convs = _convs(block, in_channels, stage_width, out_channels, stride, skip)
    sc = make_shortcut(shortcut, in_channels, out_channels, stride, norm if projection_norm else "none",
                       shortcut_kind, shortcut_scale, shortcut_dropout)
    gated = shortcut_kind in ("exclusive_gating", "shortcut_gating")
    classic = not gated and residual_scale == 1 and branch_scaling == "none"
    if block_order == "original" and classic and (block == "bottleneck" or skip == 2):
        if block == "bottleneck":
            return Bottleneck(in_channels, stage_width, stride, sc, norm, activation), out_channels
        return BasicBlock(in_channels, out_channels, stride, sc, norm, activation), out_channels
    after = after_addition(block_order, out_channels, norm, activation)
    residual = scale_branch(residual_branch(block_order, convs, norm, activation), after, branch_scaling,
                            residual_scale, units)
    if gated:
        unit = ExclusiveGatedUnit if shortcut_kind == "exclusive_gating" else ShortcutGatedUnit
        return unit(residual, sc, Gate(in_channels, out_channels, stride, gate_bias), after), out_channels
    return ResidualUnit(residual, sc, after), out_channels


class CifarNet(nn.Module):
    def __init__(self, block: str, *, depth, width, num_classes, in_channels, norm, activation, preact=False,
                 **block_options):
        super().__init__()
        n = cifar_depth(block)(depth, **block_options)
        # Fixup (branch.py) has a scalar bias where a norm would be, and one before the classifier.
        fixup = block_options.get("branch_scaling") == "fixup"
        norm_layer = (lambda channels: Bias()) if fixup else (lambda channels: make_norm(norm, channels))
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.Identity() if preact else norm_layer(width)
        self.act1 = nn.Identity() if preact else make_activation(activation, width)
        stages, channels = make_stages((n, n, n), width, lambda index, channels, stride: make_block(
            block, channels, width * 2 ** index, stride, norm=norm, activation=activation, units=3 * n,
            **block_options))
        self.stage1, self.stage2, self.stage3 = stages
        # Pre-activation: the last unit's output has not been normalized yet (He et al. 2016, sec. 4.1).
        self.bn_out = norm_layer(channels) if preact else nn.Identity()
        self.act_out = make_activation(activation, channels) if preact else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = (BiasedLinear if fixup else nn.Linear)(channels, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        x = self.act_out(self.bn_out(x))
        return self.fc(self.pool(x).flatten(1))

    def stages(self) -> list[nn.Sequential]:
        return [self.stage1, self.stage2, self.stage3]


SKIP = dict(default=2, allowed=(1, 2, 3), doc="conv layers a shortcut spans; depth = 3*skip*n + 2 (paper: 2)")


@dataclass
class PlainOptions(ConvOptions):
    """The plain CIFAR net of He et al. 2015, sec. 4.2: no shortcuts at all."""
    skip: int = choice(**SKIP)


@dataclass
class ResidualOptions(ConvOptions):
    """What a residual unit of the CIFAR families takes (He et al. 2015, 2016)."""
    shortcut: str = choice("A", SHORTCUTS, "where dimensions change: A zero-padded identity | B projection | C "
                           "projection everywhere (He et al. 2015, sec. 3.3) | A_pool 2x2 average pool + zero "
                           "padding | D 2x2 average pool + 1x1 projection (He et al. 2019, ResNet-D)")
    shortcut_kind: str = choice("identity", SHORTCUT_KINDS, "what the shortcut does where dimensions stay (He et "
                                "al. 2016, Fig. 2, Table 1)")
    shortcut_scale: float = real(0.5, "shortcut_kind=scaling: the constant (He et al. 2016, Table 1: 0.5 fails)")
    shortcut_dropout: float = real(0.5, "shortcut_kind=dropout: drop probability on the shortcut (He et al. "
                                   "2016: 0.5)", low=0, high=1, high_open=True)
    gate_bias: float = real(-6.0, "initial bias b of the gates g = sigmoid(1x1 conv + b) (He et al. 2016, "
                            "Table 1: -6 best; 0 to -5 fail with exclusive gating)")
    residual_scale: float = real(1.0, "constant on the residual branch F of every unit (He et al. 2016, Table 1: "
                                 "0.5 with shortcut_kind=scaling and shortcut_scale 0.5, 'frozen gating')")
    projection_norm: bool = flag(True, "a norm after each projection shortcut's 1x1 conv (B, C, D; He et al. "
                                 "2015); false as in the official pre-activation ResNet-164/1001")
    zero_init_residual: bool = flag(False, "the last norm of every residual branch starts at 0, so each block "
                                    "starts as its shortcut (Goyal et al. 2017, sec. 5.1)")
    branch_scaling: str = choice(**BRANCH_SCALING)

    @staticmethod
    def combined(values: dict) -> None:
        check_combination(values)


ORDER = dict(default="original", allowed=tuple(ORDERS), doc="where BN and ReLU sit (He et al. 2016, Fig. 4): "
             "original | bn_after_add | relu_before_add | relu_preact | full_preact")


@dataclass
class ResNetOptions(ResidualOptions):
    """He et al. 2015's CIFAR ResNet, depth 6n+2."""
    block_order: str = choice(**ORDER)
    skip: int = choice(**SKIP)


@dataclass
class BottleneckOptions(ResidualOptions):
    """1x1-3x3-1x1 bottleneck units of 4x expansion, depth 9n+2 (He et al. 2016)."""
    shortcut: str = choice("B", SHORTCUTS, "projections where dimensions change (He et al. 2016); A and C also "
                           "work")
    block_order: str = choice(**ORDER)


RESIDUAL_VARIANTS = ("block_order", "skip", "shortcut_kind", "residual_scale", "branch_scaling")
HE_2015 = "He et al. 2015, sec. 4.2"

PLAIN = Family(partial(CifarNet, "plain"), cifar_depth("plain"), PlainOptions, default_depth=20, source=HE_2015,
               variants=("skip",))
RESNET = Family(partial(CifarNet, "basic"), cifar_depth("basic"), ResNetOptions, default_depth=20, source=HE_2015,
                label="{shortcut}", variants=RESIDUAL_VARIANTS)
# ResNet-164 is He et al. 2016's bottleneck net (Tables 2-4).
RESNET_BOTTLENECK = Family(partial(CifarNet, "bottleneck"), cifar_depth("bottleneck"), BottleneckOptions,
                           default_depth=164, source="He et al. 2016, Identity Mappings, sec. 4",
                           label="{shortcut}",
                           variants=("block_order", "shortcut_kind", "residual_scale", "branch_scaling"))
