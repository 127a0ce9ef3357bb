"""Building blocks (He et al. 2015, Fig. 2 and Fig. 3). Shortcut, norm and activation are injected."""
from torch import nn

from .activations import make_activation
from .norms import make_norm
from .residual import Residual, branch_end


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


class PlainBlock(nn.Module):
    """Two 3x3 conv layers: out = act(bn2(conv2(act(bn1(conv1(x))))))."""

    def __init__(self, in_channels, out_channels, stride, norm: str, activation: str):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = make_norm(norm, out_channels)
        self.act1 = make_activation(activation, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = make_norm(norm, out_channels)
        self.act2 = make_activation(activation, out_channels)

    def forward(self, x):
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))


class BasicBlock(PlainBlock, Residual):
    """The same layers plus a shortcut: out = act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_channels, out_channels, stride, shortcut: nn.Module, norm: str, activation: str):
        super().__init__(in_channels, out_channels, stride, norm, activation)
        self.shortcut = shortcut

    def forward(self, x):
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + self.shortcut(x))

    def residual_end(self) -> nn.Module:
        return branch_end([self.conv2, self.bn2])


def make_stages(counts, channels: int, make_block) -> tuple[list[nn.Sequential], int]:
    """The stages of a net, one nn.Sequential each, and the channels out of the last: stage i holds
    counts[i] blocks, and the first block of every stage after the first halves the map (stride 2).
    `make_block(stage index, in channels, stride)` -> (block, out channels). Every family that stacks
    blocks in stages (CIFAR, ImageNet, ResNeXt) walks them here."""
    stages = []
    for index, n in enumerate(counts):
        blocks = []
        for b in range(n):
            block, channels = make_block(index, channels, 2 if index > 0 and b == 0 else 1)
            blocks.append(block)
        stages.append(nn.Sequential(*blocks))
    return stages, channels
