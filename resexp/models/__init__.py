"""Model families and the one builder: build_model(arch=..., depth=..., ...).

Every keyword of build_model is a key of the `model` config group (conf/model/*.yaml, where each is
described with its paper); its default here is the value conf/model/resnet.yaml gives it.
"""
import inspect
from functools import partial
from typing import NamedTuple

from torch import nn

from .activations import ACTIVATIONS
from .cifar import CifarNet, cifar_depth
from .densenet import DenseNet, densenet_depth
from .imagenet import ImageNetNet, check_plain_depth, check_resnet_depth
from .init import INITS, init_weights
from .linear import LinearNet, check_depth as check_linear_depth
from .norms import NORMS
from .orders import ORDERS
from .resnext import ResNeXt, resnext_depth
from .shortcuts import SHORTCUT_KINDS, SHORTCUTS
from .vgg import LAYOUTS, VGG, vgg_depth

BLOCKS = ("basic", "bottleneck")
SKIPS = (1, 2, 3)
# keys of this kind the CIFAR residual families take (beside depth, width, norm, activation, init)
RESIDUAL = ("shortcut", "shortcut_kind", "shortcut_scale", "shortcut_dropout", "gate_bias", "zero_init_residual",
            "residual_scale", "projection_norm")


class Family(NamedTuple):
    build: callable   # keywords: depth, width, num_classes, in_channels, norm, activation, *options
    depth: callable   # depth, **options -> anything; raises ValueError naming the valid depths
    options: tuple = ()  # the family's own keywords; any other key must keep its default


def _preact(block="basic", **options):
    """He et al. 2016: full pre-activation units, no norm/activation after the first conv, one before the pool."""
    return CifarNet(block, block_order="full_preact", preact=True, **options)


def _preact_depth(depth, block="basic", **options):
    return cifar_depth(block)(depth, **options)


def _highway(**options):
    """Srivastava et al. 2015: every block is g * H(x) + (1 - g) * x, H two conv-norm-act layers."""
    # the gate alone scales H; a projection (shortcut B) keeps its norm, as He et al. 2015's
    return CifarNet("basic", block_order="relu_before_add", shortcut_kind="exclusive_gating", residual_scale=1,
                    projection_norm=True, **options)


def _depth_only(check):
    return lambda depth, **_: check(depth)


FAMILIES = {
    "plain": Family(partial(CifarNet, "plain"), cifar_depth("plain"), ("shortcut", "skip")),
    "resnet": Family(partial(CifarNet, "basic"), cifar_depth("basic"), RESIDUAL + ("block_order", "skip")),
    "resnet_bottleneck": Family(partial(CifarNet, "bottleneck"), cifar_depth("bottleneck"),
                                RESIDUAL + ("block_order",)),
    "preact_resnet": Family(_preact, _preact_depth, RESIDUAL + ("block", "skip")),
    "highway": Family(_highway, cifar_depth("basic"), ("shortcut", "gate_bias", "skip", "zero_init_residual")),
    "densenet": Family(DenseNet, densenet_depth, ("growth", "bottleneck", "compression")),
    "densenet_bc": Family(DenseNet, densenet_depth, ("growth", "bottleneck", "compression")),
    "resnext": Family(ResNeXt, _depth_only(resnext_depth), ("shortcut", "cardinality", "base_width", "zero_init_residual")),
    "vgg": Family(VGG, vgg_depth, ("layout",)),
    "imagenet_plain": Family(partial(ImageNetNet, False), _depth_only(check_plain_depth), ("shortcut",)),
    "imagenet_resnet": Family(partial(ImageNetNet, True), _depth_only(check_resnet_depth),
                              ("shortcut", "zero_init_residual")),
    "linear_deep": Family(LinearNet, _depth_only(check_linear_depth), ("residual",)),
}
def _family(arch: str) -> Family:
    """FAMILIES[arch] as a Family; a (build, depth check) pair is a family without options of its own."""
    return Family(*FAMILIES[arch])


# keys every family takes; build_model handles the init ones itself
COMMON = ("activation", "width", "norm", "init", "init_alpha", "init_std", "num_classes", "in_channels")


def build_model(arch="resnet", depth=20, shortcut="A", activation="relu", width=16, num_classes=10,
                in_channels=3, norm="batch", init="kaiming_normal", init_alpha=1.0, init_std=0.01,
                zero_init_residual=False, block_order="original", skip=2, shortcut_kind="identity",
                shortcut_scale=0.5, shortcut_dropout=0.5, gate_bias=-6.0, residual_scale=1.0, projection_norm=True,
                block="basic", growth=12,
                bottleneck=False, compression=1.0, cardinality=8, base_width=64, layout="cifar",
                residual=False) -> nn.Module:
    options = {name: value for name, value in locals().items() if name not in ("arch", "depth")}
    check_model_args(arch, depth, **options)
    family = _family(arch)
    model = family.build(depth=depth, activation=activation, width=width, num_classes=num_classes,
                         in_channels=in_channels, norm=norm,
                         **{key: options[key] for key in family.options if key != "zero_init_residual"})
    init_weights(model, init, init_alpha, init_std, zero_init_residual)
    return model


DEFAULTS = {name: p.default for name, p in inspect.signature(build_model).parameters.items()}

# key -> (test, what is allowed); a ValueError names the key, the value and this text
_ALLOWED = {
    "shortcut": (lambda v: v in SHORTCUTS, "choose one of: " + ", ".join(SHORTCUTS)),
    "activation": (lambda v: v in ACTIVATIONS, "choose one of: " + ", ".join(ACTIVATIONS)),
    "norm": (lambda v: v in NORMS, "choose one of: " + ", ".join(NORMS)),
    "init": (lambda v: v in INITS, "choose one of: " + ", ".join(INITS)),
    "block_order": (lambda v: v in ORDERS, "choose one of: " + ", ".join(ORDERS)),
    "shortcut_kind": (lambda v: v in SHORTCUT_KINDS, "choose one of: " + ", ".join(SHORTCUT_KINDS)),
    "skip": (lambda v: v in SKIPS, "choose one of: 1, 2, 3 (conv layers a shortcut skips)"),
    "block": (lambda v: v in BLOCKS, "choose one of: " + ", ".join(BLOCKS)),
    "layout": (lambda v: v in LAYOUTS, "choose one of: " + ", ".join(LAYOUTS)),
    "zero_init_residual": (lambda v: isinstance(v, bool), "it must be true or false"),
    "bottleneck": (lambda v: isinstance(v, bool), "it must be true or false"),
    "residual": (lambda v: isinstance(v, bool), "it must be true or false"),
    "width": (lambda v: _count(v), "it must be a positive integer (16 in the paper)"),
    "growth": (lambda v: _count(v), "it must be a positive integer (12 in Huang et al. 2017)"),
    "cardinality": (lambda v: _count(v), "it must be a positive integer"),
    "base_width": (lambda v: _count(v), "it must be a positive integer"),
    "num_classes": (lambda v: _count(v), "it must be a positive integer"),
    "in_channels": (lambda v: _count(v), "it must be a positive integer"),
    "init_alpha": (lambda v: _number(v) and v > 0, "it must be a positive number"),
    "init_std": (lambda v: _number(v) and v > 0, "it must be a positive number"),
    "shortcut_scale": (lambda v: _number(v), "it must be a number"),
    "residual_scale": (lambda v: _number(v), "it must be a number (1: F unscaled, as in He et al. 2015)"),
    "projection_norm": (lambda v: isinstance(v, bool), "it must be true or false"),
    "gate_bias": (lambda v: _number(v), "it must be a number"),
    "shortcut_dropout": (lambda v: _number(v) and 0 <= v < 1, "it must be a probability in [0, 1)"),
    "compression": (lambda v: _number(v) and 0 < v <= 1, "it must be in (0, 1] (0.5 for DenseNet-BC)"),
}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def check_model_args(arch, depth, **options):
    """Raise ValueError with one line naming the bad argument and what is allowed."""
    if arch not in FAMILIES:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(FAMILIES)}")
    family = _family(arch)
    for key, value in options.items():
        if key not in DEFAULTS:
            raise ValueError(f"model.{key} is not a model option; choose from: "
                             + ", ".join(k for k in DEFAULTS if k != "arch"))
        test, allowed = _ALLOWED[key]
        if not test(value):
            raise ValueError(f"model.{key}={value!r} is invalid; {allowed}")
        if key not in family.options and key not in COMMON and value != DEFAULTS[key]:
            users = [name for name in FAMILIES if key in _family(name).options]
            raise ValueError(f"model.{key}={value!r} does not apply to model {arch}; it applies to: "
                             + ", ".join(users))
    if options.get("block") == "bottleneck" and options.get("skip", DEFAULTS["skip"]) != DEFAULTS["skip"]:
        raise ValueError("model.skip applies to basic blocks; a bottleneck always spans 3 convs (1x1, 3x3, 1x1)")
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ValueError(f"depth={depth!r} must be an integer")
    family.depth(depth, **{key: options[key] for key in family.options if key in options})


def model_options(model_cfg) -> dict:
    """The build_model keywords of a composed `model` group: every key but `name`."""
    return {key: value for key, value in dict(model_cfg).items() if key != "name"}


def model_from_config(model_cfg, depth, num_classes, in_channels) -> nn.Module:
    """The net a composed config's `model` group and `depth` describe: every key of the group but `name`
    is a keyword of build_model, so a new model option needs a YAML key and a build_model argument only."""
    return build_model(arch=model_cfg.name, depth=depth, num_classes=num_classes, in_channels=in_channels,
                       **model_options(model_cfg))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
