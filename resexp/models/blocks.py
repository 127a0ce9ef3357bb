"""Building blocks (He et al. 2015, Fig. 2 and Fig. 3). Shortcut, norm and activation are injected."""
from torch import nn

from .activations import make_activation
from .norms import NORM_LAYERS, make_norm


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


class BasicBlock(PlainBlock):
    """The same layers plus a shortcut: out = act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_channels, out_channels, stride, shortcut: nn.Module, norm: str, activation: str):
        super().__init__(in_channels, out_channels, stride, norm, activation)
        self.shortcut = shortcut

    def forward(self, x):
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + self.shortcut(x))

    def residual_end(self) -> nn.Module:
        """The layer zero_init_residual zeroes: the last norm of the branch (its last conv without one)."""
        return self.bn2 if isinstance(self.bn2, NORM_LAYERS) else self.conv2
