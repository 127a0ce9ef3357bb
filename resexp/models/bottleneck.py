"""The bottleneck block (He et al. 2015, Fig. 5 right): 1x1 reduce, 3x3, 1x1 expand by 4.

The stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5"); the paper strides the first 1x1.
Parameter counts are the same either way. With `groups` > 1 the 3x3 conv is grouped: the ResNeXt
block (Xie et al. 2017, Fig. 3c), whose output width is given separately.
"""
from torch import nn

from .activations import make_activation
from .blocks import conv3x3
from .norms import make_norm
from .residual import Residual, branch_end

EXPANSION = 4  # output channels = 4 x the bottleneck width (He et al. 2015, Fig. 5)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class Bottleneck(Residual):
    """out = act(bn3(conv3(act(bn2(conv2(act(bn1(conv1(x)))))))) + shortcut(x))."""

    def __init__(self, in_channels, width, stride, shortcut: nn.Module, norm: str, activation: str,
                 groups: int = 1, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or EXPANSION * width
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = make_norm(norm, width)
        self.act1 = make_activation(activation, width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = make_norm(norm, width)
        self.act2 = make_activation(activation, width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = make_norm(norm, out_channels)
        self.shortcut = shortcut
        self.act3 = make_activation(activation, out_channels)

    def forward(self, x):
        out = self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))
        out = self.bn3(self.conv3(out))
        return self.act3(out + self.shortcut(x))

    def residual_end(self) -> nn.Module:
        return branch_end([self.conv3, self.bn3])
