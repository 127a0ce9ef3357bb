"""Model families and the one builder: build_model(arch=..., depth=..., ...)."""
from functools import partial

from torch import nn

from .activations import ACTIVATIONS
from .cifar import CifarNet, stage_rule
from .imagenet import ImageNetNet, check_plain_depth, check_resnet_depth
from .init import init_weights
from .linear import LinearNet, check_depth as check_linear_depth
from .norms import NORMS
from .shortcuts import SHORTCUTS

# arch name -> (constructor, depth check raising ValueError). New families add a line here.
FAMILIES = {
    "plain": (partial(CifarNet, "plain"), stage_rule("plain")),
    "resnet": (partial(CifarNet, "basic"), stage_rule("basic")),
    "resnet_bottleneck": (partial(CifarNet, "bottleneck"), stage_rule("bottleneck")),
    "imagenet_plain": (partial(ImageNetNet, False), check_plain_depth),
    "imagenet_resnet": (partial(ImageNetNet, True), check_resnet_depth),
    "linear_deep": (LinearNet, check_linear_depth),
}


def check_model_args(arch, depth, shortcut="A", activation="relu", width=16, norm="batch"):
    """Raise ValueError with one line naming the bad argument and what is allowed."""
    if arch not in FAMILIES:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(FAMILIES)}")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {shortcut!r}; choose one of: {', '.join(SHORTCUTS)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width={width!r} must be a positive integer (16 in the paper)")
    if not isinstance(depth, int):
        raise ValueError(f"depth={depth!r} must be an integer")
    FAMILIES[arch][1](depth)


def build_model(arch="resnet", depth=20, shortcut="A", activation="relu", width=16, num_classes=10,
                in_channels=3, norm="batch", init="kaiming", init_alpha=1.0, **family_options) -> nn.Module:
    """`family_options`: keys only one family has (linear_deep's `residual`), passed to its constructor."""
    check_model_args(arch, depth, shortcut, activation, width, norm)
    constructor = FAMILIES[arch][0]
    model = constructor(depth=depth, shortcut=shortcut, activation=activation, width=width,
                        num_classes=num_classes, in_channels=in_channels, norm=norm, **family_options)
    init_weights(model, init, init_alpha)
    return model


def model_from_config(model_cfg, depth, num_classes, in_channels) -> nn.Module:
    """The net a composed config's `model` group and `depth` describe: every key of the group but `name`
    is a keyword of build_model, so a new model option needs a YAML key and a build_model argument only."""
    options = {key: value for key, value in dict(model_cfg).items() if key != "name"}
    return build_model(arch=model_cfg.name, depth=depth, num_classes=num_classes, in_channels=in_channels, **options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
