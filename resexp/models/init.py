"""Weight initialization.

kaiming: He et al. 2015b ("Delving deep into rectifiers"), used by He et al. 2015 (sec. 3.4).
scaled_identity: every 3x3 conv starts as `alpha` times the identity (a Dirac kernel), every square
linear layer as alpha * I (linear_deep). With alpha > 1 and no normalization the signal grows as
alpha**depth: the textbook way to make a deep plain net blow up.
"""
from torch import nn

from .linear import SquareLinear

INITS = ("kaiming", "scaled_identity")


def init_weights(model: nn.Module, scheme: str = "kaiming", alpha: float = 1.0) -> None:
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose one of: {', '.join(INITS)}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and scheme == "scaled_identity" and m.kernel_size == (3, 3):
            nn.init.dirac_(m.weight)
            m.weight.data.mul_(alpha)
        elif isinstance(m, SquareLinear) and scheme == "scaled_identity":
            nn.init.eye_(m.weight)
            m.weight.data.mul_(alpha)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in",
                                    nonlinearity="relu")
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
