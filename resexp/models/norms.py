"""Normalization registry: name -> factory(channels) -> nn.Module."""
from math import gcd

from torch import nn

NORM_LAYERS = (nn.BatchNorm2d, nn.GroupNorm)  # every layer NORMS makes but "none" (layer norm is a GroupNorm)
GROUPS = 32  # Wu and He 2018, "Group Normalization": 32 groups (fewer where a layer has fewer channels)

NORMS = {
    "batch": nn.BatchNorm2d,  # Ioffe and Szegedy 2015, as in He et al. 2015
    # Wu and He 2018: statistics over groups of channels of one image, independent of the batch size.
    "group": lambda channels: nn.GroupNorm(gcd(GROUPS, channels), channels),
    # Ba et al. 2016, "Layer Normalization", for conv maps: one group = all channels and pixels of an image.
    "layer": lambda channels: nn.GroupNorm(1, channels),
    # No normalization at all: the setting in which init alone decides whether a deep net trains.
    "none": lambda channels: nn.Identity(),
}


def make_norm(name: str, channels: int) -> nn.Module:
    return NORMS[name](channels)
