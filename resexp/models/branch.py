"""What multiplies a residual branch F, for deep nets that train without normalization
(`model.branch_scaling`; `model.residual_scale`, a constant, multiplies F in every case):

none:   F alone.
rezero: F times a learned scalar that starts at 0, so every unit starts as its shortcut (SkipInit, De and
        Smith 2020, "Batch Normalization Biases Residual Blocks Towards the Identity Function"; ReZero,
        Bachlechner et al. 2020, arXiv 2003.04887: x_next = x + alpha F(x), alpha = 0 at init).
fixup:  Zhang et al. 2019, "Fixup Initialization" (arXiv 1901.09321), sec. 3: a learned scalar multiplier
        on F (at 1), a learned scalar bias before each conv, linear and activation layer (at 0), and the
        init of init.py: F's weight layers scaled by L^(-1/(2m-2)) (L units, m weight layers a branch),
        F's last layer and the classifier at 0. It replaces normalization: it takes model.norm=none.
depth:  F times 1/sqrt(L), L the net's residual units (Bordelon et al. 2023, arXiv 2309.16620, the
        depth-muP branch scale): the sum of L branches keeps its variance as the net deepens.
"""
import math
from collections import OrderedDict

import torch
from torch import nn

from .activations import ACTIVATIONS
from .shortcuts import Scale

BRANCH_SCALINGS = ("none", "rezero", "fixup", "depth")
ACTIVATION_LAYERS = tuple(ACTIVATIONS.values())
# the options record field (options.choice) of every family that takes it
BRANCH_SCALING = dict(default="none", allowed=BRANCH_SCALINGS, doc="what else multiplies F, to train deep without "
                      "norms: none | rezero (a learned scalar from 0: SkipInit, De and Smith 2020; ReZero, Bachlechner "
                      "et al. 2020) | fixup (Zhang et al. 2019; takes norm=none) | depth (1/sqrt(residual units), "
                      "Bordelon et al. 2023)")


def check_combination(values: dict) -> None:
    """The combinations of branch_scaling with a record's other options that make no sense, in one line."""
    scaling = values["branch_scaling"]
    if scaling == "fixup" and values["norm"] != "none":
        raise ValueError(f"model.branch_scaling=fixup takes model.norm=none, not {values['norm']!r}: Fixup "
                         "replaces normalization, and a norm after each conv would undo its scaled init")
    if scaling == "rezero" and values.get("zero_init_residual"):
        raise ValueError("model.branch_scaling=rezero with model.zero_init_residual=true: F's gate and its last "
                         "layer would both start at 0 and neither would ever get a gradient; use one of them")
    if scaling == "fixup" and values.get("zero_init_residual"):
        raise ValueError("model.branch_scaling=fixup sets each branch's last layer to 0 itself; leave "
                         "model.zero_init_residual=false")


class Multiplier(nn.Module):
    """x times a learned scalar: ReZero's alpha (from 0), Fixup's multiplier (from 1)."""

    def __init__(self, initial: float):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(initial)))

    def forward(self, x):
        return self.weight * x


class Bias(nn.Module):
    """x plus a learned scalar, from 0 (Fixup's bias before a conv, linear or activation layer)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        return x + self.bias


class BiasedLinear(nn.Linear):
    """A linear layer with a learned scalar added to its input (Fixup's bias before the classifier)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features)
        self.bias_in = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        return super().forward(x + self.bias_in)


def multiplier(scaling: str, units: int) -> nn.Module:
    """The module that multiplies F at the end of a branch: a learned scalar (rezero from 0, fixup from 1),
    1/sqrt(units) (depth), or nothing."""
    if scaling in ("rezero", "fixup"):
        return Multiplier(0.0 if scaling == "rezero" else 1.0)
    return Scale(1 / math.sqrt(units)) if scaling == "depth" else nn.Identity()


def fixup_branch(branch: nn.Sequential, after: nn.Sequential) -> nn.Sequential:
    """F with Fixup's scalars: a bias before each conv, linear and activation layer, the multiplier at the
    end, and a bias after it where an activation follows the addition (it acts before that activation on
    F's side, as the paper's ResNet places it)."""
    layers = OrderedDict()
    for name, layer in branch.named_children():
        if isinstance(layer, (nn.Conv2d, nn.Linear, *ACTIVATION_LAYERS)):
            layers[f"bias_{name}"] = Bias()
        layers[name] = layer
    layers["multiplier"] = Multiplier(1.0)
    if any(isinstance(layer, ACTIVATION_LAYERS) for layer in after):
        layers["bias_out"] = Bias()
    return nn.Sequential(layers)


def scale_branch(branch: nn.Sequential, after: nn.Sequential, scaling: str, residual_scale: float,
                 units: int) -> nn.Sequential:
    """F as `scaling` and the constant `residual_scale` make it; `units`: the net's residual units (L)."""
    factor = residual_scale / math.sqrt(units) if scaling == "depth" else residual_scale
    if factor != 1:  # a constant on F (He et al. 2016, Table 1; the depth scale)
        branch.add_module("scale", Scale(factor))
    if scaling == "rezero":
        branch.add_module("alpha", Multiplier(0.0))
    if scaling == "fixup":
        return fixup_branch(branch, after)
    return branch
