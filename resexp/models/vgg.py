"""VGG (Simonyan and Zisserman 2015, "Very Deep Convolutional Networks", Table 1, configs A, B, D, E).

Five stages of 3x3 convs at width, 2x, 4x, 8x, 8x (64 .. 512) channels, each closed by a 2x2 max-pool;
depth counts the convs plus the 3 fully connected layers. The imagenet layout keeps the paper's head
(7x7 average pool to 7x7 maps, then 4096-4096-classes fully connected layers with dropout 0.5):
VGG-19 at 224x224 and 1000 classes has 143.7M parameters (their Table 2: 144M). The cifar layout
replaces the head by one linear layer on the pooled 512 channels. Pools round up, so images smaller
than 32 pixels still reach the head.
"""
from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from .activations import make_activation
from .norms import make_norm
from .family import Family, depth_table
from .options import ConvOptions, choice, count
from .pool import AvgPoolTo

# depth -> convs per stage (Table 1: A = 11, B = 13, D = 16, E = 19 weight layers)
VGG_DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
LAYOUTS = ("imagenet", "cifar")
HIDDEN = 4096  # units of the two hidden fully connected layers (Table 1)


vgg_depth = depth_table(VGG_DEPTHS, "vgg")


class VGG(nn.Module):
    def __init__(self, *, depth, width, num_classes, in_channels, norm, activation, layout):
        super().__init__()
        layers, channels, i = {}, in_channels, 0
        for index, convs in enumerate(vgg_depth(depth), 1):
            out = width * 2 ** min(index - 1, 3)
            for _ in range(convs):
                i += 1  # named conv1, bn1, act1, conv2, ... so per-layer logs find them
                # the paper's convs have biases; the cifar layout's, like ResNet's, rely on the norm
                layers[f"conv{i}"] = nn.Conv2d(channels, out, 3, padding=1, bias=layout == "imagenet")
                layers[f"bn{i}"], layers[f"act{i}"] = make_norm(norm, out), make_activation(activation, out)
                channels = out
            layers[f"pool{index}"] = nn.MaxPool2d(2, ceil_mode=True)
        self.features = nn.Sequential(OrderedDict(layers))
        if layout == "imagenet":
            self.pool = AvgPoolTo(7)
            self.classifier = nn.Sequential(
                nn.Linear(channels * 49, HIDDEN), make_activation(activation, HIDDEN), nn.Dropout(0.5),
                nn.Linear(HIDDEN, HIDDEN), make_activation(activation, HIDDEN), nn.Dropout(0.5),
                nn.Linear(HIDDEN, num_classes))
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))

    def stages(self) -> list[nn.Sequential]:
        """The five conv stages are one Sequential of layers (named as the paper's configs list them)."""
        return [self.features]


@dataclass
class VGGOptions(ConvOptions):
    """VGG (Simonyan and Zisserman 2015, Table 1): depth 11, 13, 16, 19."""
    width: int = count(64, "channels of the first stage; stages use width, 2x, 4x, 8x, 8x (paper: 64)")
    layout: str = choice("cifar", LAYOUTS, "cifar: one linear layer on the pooled channels | imagenet: the "
                         "paper's 3 fully connected layers (VGG-19 at 1000 classes: 143.7M parameters)")


def vgg_layers(depth: int, layout: str = "cifar", **_) -> int:
    """The paper's depth counts 3 fully connected layers; the cifar layout's head is 1."""
    return depth - 2 if layout == "cifar" else depth


# VGG-16 (D) is the net the paper and He et al. 2015 compare with most.
VGG_FAMILY = Family(VGG, vgg_depth, VGGOptions, default_depth=16, source="Simonyan and Zisserman 2015, Table 1",
                    variants=("layout",), layers=vgg_layers)
