"""Normalization registry: name -> factory(channels) -> nn.Module."""
from torch import nn

NORMS = {
    "batch": nn.BatchNorm2d,
    # No normalization at all: the setting in which init alone decides whether a deep net trains.
    "none": lambda channels: nn.Identity(),
}


def make_norm(name: str, channels: int) -> nn.Module:
    return NORMS[name](channels)
