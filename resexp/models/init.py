"""Weight initialization: one scheme for every conv and linear weight, biases zero, norms at 1 and 0.

kaiming_normal: He et al. 2015b ("Delving deep into rectifiers"), used by He et al. 2015 (sec. 3.4);
  `kaiming` is its old name here. kaiming_uniform: the same variance from a uniform distribution.
xavier: Glorot and Bengio 2010 (normal). orthogonal: Saxe et al. 2014. normal: N(0, init_std^2)
  (Simonyan and Zisserman 2015 trained VGG-11 from N(0, 0.01^2)).
scaled_identity: every 3x3 conv starts as `alpha` times the identity (a Dirac kernel), every square
linear layer of linear_deep as alpha * I. With alpha > 1
and no normalization the signal grows as alpha**depth: the textbook way to make a deep plain net blow up.
zero_init_residual: the last norm of every residual branch starts at 0 (Goyal et al. 2017, "Accurate,
Large Minibatch SGD", sec. 5.1), so every residual block starts as its shortcut.
Gate biases (gates.py) start at their configured value.
fixup: Zhang et al. 2019, "Fixup Initialization", sec. 3, rules 1-2, after the scheme: every weight layer of
a residual branch but its last scaled by L^(-1/(2m-2)) (L residual units in the net, m weight layers in
the branch), the last at 0, and the classifier (the last weight layer on the main path) at 0. Its
multipliers and scalar biases (rule 3, branch.py) start at 1 and 0 when they are made.
"""
from torch import nn

from .norms import NORM_LAYERS
from .parts import WEIGHTED, side_paths, weighted_layers
from .residual import Residual


INITS = ("kaiming_normal", "kaiming", "kaiming_uniform", "xavier", "orthogonal", "normal", "scaled_identity")


def _init_weight(m: nn.Module, scheme: str, alpha: float, std: float) -> None:
    mode = "fan_out" if isinstance(m, nn.Conv2d) else "fan_in"
    if scheme == "scaled_identity" and isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1:
        nn.init.dirac_(m.weight)
        m.weight.data.mul_(alpha)
    elif scheme == "scaled_identity" and getattr(m, "square", False):
        nn.init.eye_(m.weight)
        m.weight.data.mul_(alpha)
    elif scheme == "kaiming_uniform":
        nn.init.kaiming_uniform_(m.weight, mode=mode, nonlinearity="relu")
    elif scheme == "xavier":
        nn.init.xavier_normal_(m.weight)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(m.weight)
    elif scheme == "normal":
        nn.init.normal_(m.weight, 0.0, std)
    else:  # kaiming_normal, and the weights scaled_identity leaves alone
        nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")


def fixup(model: nn.Module) -> None:
    """Zhang et al. 2019's rules 1-2 on an initialised net (module docstring); units and branches found by type."""
    side = side_paths(model)  # shortcuts (projections) and gates are not in a branch
    units = [m for m in model.modules() if isinstance(m, Residual)]
    for unit in units:
        last = unit.residual_end()
        layers = [m for m in unit.modules() if isinstance(m, WEIGHTED) and id(m) not in side and m is not last]
        if layers:  # m = len(layers) + 1 >= 2
            factor = len(units) ** (-1 / (2 * (len(layers) + 1) - 2))
            for layer in layers:
                layer.weight.data.mul_(factor)
        nn.init.zeros_(last.weight)
    _, classifier = weighted_layers(model)[-1]
    nn.init.zeros_(classifier.weight)
    if classifier.bias is not None:
        nn.init.zeros_(classifier.bias)


def init_weights(model: nn.Module, scheme: str = "kaiming_normal", alpha: float = 1.0, std: float = 0.01,
                 zero_init_residual: bool = False, fixup_init: bool = False) -> None:
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose one of: {', '.join(INITS)}")
    if next(model.parameters()).is_meta:  # a model built only to be counted has no values to set
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            _init_weight(m, scheme, alpha, std)
            if m.bias is not None:
                nn.init.constant_(m.bias, getattr(m, "bias_init", 0.0))
        elif isinstance(m, NORM_LAYERS) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Residual):
                nn.init.zeros_(m.residual_end().weight)
    if fixup_init:
        fixup(model)
