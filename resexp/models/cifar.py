"""The CIFAR networks of He et al. 2015, sec. 4.2, and their variants (He et al. 2016; highway).

A 3x3 conv with `width` channels, three stages of n blocks at width, 2x and 4x width (the first
block of stages 2 and 3 halves the map), global average pool, a linear classifier. With `skip`
3x3 layers a block (2 in the paper), depth = 3*skip*n + 2 (plain and resnet: 6n+2); with 1x1-3x3-1x1
bottlenecks of 4x expansion, depth = 9n+2 (ResNet-164 is n = 18, 1.7M parameters).

Pre-activation nets (He et al. 2016) have no norm or activation after the first conv (each unit
starts with its own) and a final norm and activation before the pool.
"""
from torch import nn

from .activations import make_activation
from .blocks import BasicBlock, PlainBlock, conv3x3
from .bottleneck import EXPANSION, Bottleneck, conv1x1
from .gates import ExclusiveGatedUnit, Gate, ShortcutGatedUnit
from .norms import make_norm
from .orders import ResidualUnit, after_addition, residual_branch
from .shortcuts import Scale, make_shortcut


def depth_rule(step: int, offset: int = 2):
    """depth -> n for depth = step * n + offset, or a ValueError naming the nearest valid depths."""
    def blocks_per_stage(depth: int) -> int:
        n, rest = divmod(depth - offset, step)
        if n >= 1 and rest == 0:
            return n
        nearest = sorted({max(step + offset, step * n + offset), step * max(1, n + 1) + offset})
        raise ValueError(f"depth={depth} is not of the form {step}n+{offset} with n >= 1; nearest valid depths: "
                         + ", ".join(map(str, nearest)))
    return blocks_per_stage


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


def make_block(block, in_channels, stage_width, stride, *, norm, activation, skip=2, shortcut=None, block_order=None,
               shortcut_kind=None, shortcut_scale=None, shortcut_dropout=None, gate_bias=None, residual_scale=None,
               projection_norm=None):
    """(block module, its output channels) for one block of a stage `stage_width` wide (plain blocks take
    no shortcut options). The paper's own blocks (original order, identity-like shortcuts, 2 convs, F
    unscaled) are the classic classes; every other combination is a unit of orders.py or gates.py around
    the same convs."""
    out_channels = stage_width * (EXPANSION if block == "bottleneck" else 1)
    convs = _convs(block, in_channels, stage_width, out_channels, stride, skip)
    if block == "plain":
        if skip == 2:
            return PlainBlock(in_channels, stage_width, stride, norm, activation), stage_width
        return residual_branch("relu_before_add", convs, norm, activation), stage_width
    sc = make_shortcut(shortcut, in_channels, out_channels, stride, norm if projection_norm else "none",
                       shortcut_kind, shortcut_scale, shortcut_dropout)
    gated = shortcut_kind in ("exclusive_gating", "shortcut_gating")
    if block_order == "original" and not gated and residual_scale == 1 and (block == "bottleneck" or skip == 2):
        if block == "bottleneck":
            return Bottleneck(in_channels, stage_width, stride, sc, norm, activation), out_channels
        return BasicBlock(in_channels, out_channels, stride, sc, norm, activation), out_channels
    residual = residual_branch(block_order, convs, norm, activation)
    if residual_scale != 1:  # F scaled by a constant (He et al. 2016, Table 1: 0.5 with 0.5 on the shortcut)
        residual.add_module("scale", Scale(residual_scale))
    after = after_addition(block_order, out_channels, norm, activation)
    if gated:
        unit = ExclusiveGatedUnit if shortcut_kind == "exclusive_gating" else ShortcutGatedUnit
        return unit(residual, sc, Gate(in_channels, out_channels, stride, gate_bias), after), out_channels
    return ResidualUnit(residual, sc, after), out_channels


class CifarNet(nn.Module):
    def __init__(self, block: str, *, depth, width, num_classes, in_channels, norm, activation, preact=False,
                 **block_options):
        super().__init__()
        n = cifar_depth(block)(depth, **block_options)
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.Identity() if preact else make_norm(norm, width)
        self.act1 = nn.Identity() if preact else make_activation(activation, width)
        stages, channels = [], width
        for index in range(3):
            blocks = []
            for b in range(n):
                stride = 2 if index > 0 and b == 0 else 1
                module, channels = make_block(block, channels, width * 2 ** index, stride, norm=norm,
                                              activation=activation, **block_options)
                blocks.append(module)
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        # Pre-activation: the last unit's output has not been normalized yet (He et al. 2016, sec. 4.1).
        self.bn_out = make_norm(norm, channels) if preact else nn.Identity()
        self.act_out = make_activation(activation, channels) if preact else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        x = self.act_out(self.bn_out(x))
        return self.fc(self.pool(x).flatten(1))
