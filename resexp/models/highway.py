"""Highway networks (Srivastava et al. 2015, "Training Very Deep Networks") in the CIFAR layout of He et
al. 2015: every block is g * H(x) + (1 - g) * x, H two conv-norm-act layers, g a learned sigmoid gate.
"""
from dataclasses import dataclass

from .cifar import SKIP, CifarNet, cifar_depth
from .family import Family
from .options import ConvOptions, choice, flag, real
from .shortcuts import SHORTCUTS


def highway_net(**options):
    """The gate alone scales H, and a projection (shortcut B) keeps its norm, as He et al. 2015's."""
    return CifarNet("basic", block_order="relu_before_add", shortcut_kind="exclusive_gating", residual_scale=1,
                    branch_scaling="none", projection_norm=True, shortcut_scale=1, shortcut_dropout=0, **options)


@dataclass
class HighwayOptions(ConvOptions):
    """Srivastava et al. 2015's highway blocks: g * H(x) + (1 - g) * x."""
    shortcut: str = choice("A", SHORTCUTS, "where dimensions change (A zero padding, B projection, ...)")
    gate_bias: float = real(-2.0, "initial transform-gate bias b: negative, so blocks start by carrying x "
                            "(paper: -1 to -3)")
    zero_init_residual: bool = flag(False, "the last norm of every branch starts at 0")
    skip: int = choice(**SKIP)


# 32 layers: the highway net He et al. 2015 compare with (Table 6).
HIGHWAY = Family(highway_net, cifar_depth("basic"), HighwayOptions, default_depth=32,
                 source="Srivastava et al. 2015; He et al. 2015, Table 6", label="{shortcut}", variants=("skip",))
