"""Weight initialization. He et al. 2015 (sec. 3.4) use the init of He et al. 2015b ("Delving deep")."""
from torch import nn

INITS = ("kaiming",)


def init_weights(model: nn.Module, scheme: str = "kaiming") -> None:
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose one of: {', '.join(INITS)}")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in",
                                    nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
