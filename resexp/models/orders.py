"""Where BN and the activation sit in a residual unit (He et al. 2016, "Identity Mappings in Deep
Residual Networks", Fig. 4), for any list of convs (2 or `skip` 3x3 convs, or a 1x1-3x3-1x1 bottleneck).

The paper writes every unit as y = h(x) + F(x), x_next = f(y) (its eqs. 1-2): F is the residual
branch, h the shortcut, f what follows the addition. The orders differ only in the layers around
each conv of F and in f, so each is one row of ORDERS below, read like the figure.
"""
from collections import OrderedDict

from torch import nn

from .activations import make_activation
from .norms import make_norm
from .residual import Residual, branch_end

# order -> (layers around every conv of F but the last, around the last, f after the addition)
ORDERS = {
    "original": ("conv bn act", "conv bn", "act"),              # Fig. 4(a), He et al. 2015
    "bn_after_add": ("conv bn act", "conv", "bn act"),          # Fig. 4(b)
    "relu_before_add": ("conv bn act", "conv bn act", ""),      # Fig. 4(c)
    "relu_preact": ("act conv bn", "act conv bn", ""),          # Fig. 4(d), ReLU-only pre-activation
    "full_preact": ("bn act conv", "bn act conv", ""),          # Fig. 4(e), the paper's proposal
}


def _layer(kind, channels, norm, activation):
    return make_norm(norm, channels) if kind == "bn" else make_activation(activation, channels)


def residual_branch(order: str, convs: list, norm: str, activation: str) -> nn.Sequential:
    """F: the convs with their norms and activations in the order's places. Layers are named conv1,
    bn1, act1, conv2, ... so per-layer logs (responses, gradient norms) find them."""
    layers = OrderedDict()
    for i, conv in enumerate(convs, 1):
        pattern = ORDERS[order][1 if i == len(convs) else 0].split()
        seen_conv = False
        for kind in pattern:
            if kind == "conv":
                layers[f"conv{i}"], seen_conv = conv, True
            else:  # a norm or activation before the conv acts on its input, after it on its output
                channels = conv.out_channels if seen_conv else conv.in_channels
                layers[f"{kind}{i}"] = _layer(kind, channels, norm, activation)
    return nn.Sequential(layers)


def after_addition(order: str, channels: int, norm: str, activation: str) -> nn.Sequential:
    """f: an empty Sequential (the identity) for the orders that leave the addition alone."""
    kinds = ORDERS[order][2].split()
    return nn.Sequential(OrderedDict((f"{kind}_out", _layer(kind, channels, norm, activation)) for kind in kinds))


class ResidualUnit(Residual):
    """x_next = f(h(x) + F(x)), He et al. 2016, eqs. 1-2, with F, h and f injected."""

    def __init__(self, residual: nn.Sequential, shortcut: nn.Module, after: nn.Sequential):
        super().__init__()
        self.residual, self.shortcut, self.after = residual, shortcut, after

    def forward(self, x):
        return self.after(self.residual(x) + self.shortcut(x))

    def residual_end(self) -> nn.Module:
        return branch_end(self.residual)
