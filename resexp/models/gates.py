"""Gated shortcuts: a learned sigmoid gate g(x) = sigmoid(1x1 conv(x) + b) mixes the branch and the
shortcut (He et al. 2016, Fig. 2c-d and Table 1; Srivastava et al. 2015, "Training Very Deep
Networks", the highway network). A very negative bias b closes the gate: the unit starts as its
shortcut, which both papers advise for deep nets.
"""
import torch
from torch import nn

from .residual import Residual, branch_end


class Gate(nn.Conv2d):
    """g(x): a 1x1 conv with a bias, then a sigmoid. `bias_init` is kept for init_weights."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, bias_init: float):
        super().__init__(in_channels, out_channels, 1, stride=stride, bias=True)
        self.bias_init = bias_init
        nn.init.constant_(self.bias, bias_init)

    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class ExclusiveGatedUnit(Residual):
    """x_next = f(g(x) * F(x) + (1 - g(x)) * h(x)): He et al. 2016 Fig. 2(c), exclusive gating, and
    with no f the highway layer of Srivastava et al. 2015 (g is its transform gate T, 1 - g the carry)."""

    def __init__(self, residual: nn.Sequential, shortcut: nn.Module, gate: Gate, after: nn.Sequential):
        super().__init__()
        self.residual, self.shortcut, self.gate, self.after = residual, shortcut, gate, after

    def forward(self, x):
        g = self.gate(x)
        return self.after(g * self.residual(x) + (1 - g) * self.shortcut(x))

    def residual_end(self) -> nn.Module:
        return branch_end(self.residual)


class ShortcutGatedUnit(ExclusiveGatedUnit):
    """x_next = f(F(x) + (1 - g(x)) * h(x)): He et al. 2016 Fig. 2(d), shortcut-only gating."""

    def forward(self, x):
        return self.after(self.residual(x) + (1 - self.gate(x)) * self.shortcut(x))
