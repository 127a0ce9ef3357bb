"""Model families and the one builder: build_model(arch, depth, **options).

A family is its net class, its depth rule and a typed record of its own options (options.py), declared in
its module; FAMILIES below is the registry, one line a family. The `model` config group is made from the
records (resexp/config.py registers it); conf/model/*.yaml only add presets.
"""
from functools import partial
from typing import NamedTuple

from torch import nn

from . import options as opts
from .cifar import (BottleneckOptions, CifarNet, HighwayOptions, PlainOptions, PreactOptions, ResNetOptions,
                    cifar_depth)
from .densenet import DenseNet, DenseNetBCOptions, DenseNetOptions, densenet_depth
from .imagenet import ImageNetNet, ImageNetPlainOptions, ImageNetResNetOptions, check_plain_depth, check_resnet_depth
from .init import init_weights
from .linear import LinearNet, LinearOptions, check_depth as check_linear_depth
from .resnext import ResNeXt, ResNeXtOptions, resnext_depth
from .vgg import VGG, VGGOptions, vgg_depth


class Family(NamedTuple):
    build: callable    # keywords: depth, num_classes, in_channels and the record's options but the init ones
    depth: callable    # depth, **options -> anything; raises ValueError naming the valid depths
    options: type      # the options record (a dataclass of options.py fields)


def _preact(block, **options):
    """He et al. 2016: full pre-activation units, no norm/activation after the first conv, one before the pool."""
    return CifarNet(block, block_order="full_preact", preact=True, **options)


def _preact_depth(depth, block="basic", **options):
    return cifar_depth(block)(depth, **options)


def _highway(**options):
    """Srivastava et al. 2015: every block is g * H(x) + (1 - g) * x, H two conv-norm-act layers; the gate
    alone scales H, and a projection (shortcut B) keeps its norm, as He et al. 2015's."""
    return CifarNet("basic", block_order="relu_before_add", shortcut_kind="exclusive_gating", residual_scale=1,
                    projection_norm=True, shortcut_scale=1, shortcut_dropout=0, **options)


def _depth_only(check):
    return lambda depth, **_: check(depth)


FAMILIES = {
    "plain": Family(partial(CifarNet, "plain"), cifar_depth("plain"), PlainOptions),
    "resnet": Family(partial(CifarNet, "basic"), cifar_depth("basic"), ResNetOptions),
    "resnet_bottleneck": Family(partial(CifarNet, "bottleneck"), cifar_depth("bottleneck"), BottleneckOptions),
    "preact_resnet": Family(_preact, _preact_depth, PreactOptions),
    "highway": Family(_highway, cifar_depth("basic"), HighwayOptions),
    "densenet": Family(DenseNet, densenet_depth, DenseNetOptions),
    "densenet_bc": Family(DenseNet, densenet_depth, DenseNetBCOptions),
    "resnext": Family(ResNeXt, _depth_only(resnext_depth), ResNeXtOptions),
    "vgg": Family(VGG, vgg_depth, VGGOptions),
    "imagenet_plain": Family(partial(ImageNetNet, False), _depth_only(check_plain_depth), ImageNetPlainOptions),
    "imagenet_resnet": Family(partial(ImageNetNet, True), _depth_only(check_resnet_depth), ImageNetResNetOptions),
    "linear_deep": Family(LinearNet, _depth_only(check_linear_depth), LinearOptions),
}
def defaults(arch: str) -> dict:
    """The family's options with their defaults (what `model=arch` composes to, but `name`)."""
    return opts.defaults(FAMILIES[arch].options)


def families_with(key: str) -> list[str]:
    return [name for name, family in FAMILIES.items() if key in opts.option_fields(family.options)]


def check_model_args(arch, depth, **options) -> dict:
    """The family's options completed with its defaults; a ValueError with one line naming the bad argument
    (an unknown model, a key the family does not have, a value it does not allow, a depth it cannot build)."""
    if arch not in FAMILIES:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(FAMILIES)}")
    family = FAMILIES[arch]
    values = opts.check(family.options, arch, options, families_with)
    if values.get("block") == "bottleneck" and values["skip"] != defaults(arch)["skip"]:
        raise ValueError("model.skip applies to basic blocks; a bottleneck always spans 3 convs (1x1, 3x3, 1x1)")
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ValueError(f"depth={depth!r} must be an integer")
    family.depth(depth, **values)
    return values


def build_model(arch="resnet", depth=20, num_classes=10, in_channels=3, **options) -> nn.Module:
    """The net of family `arch` at `depth`; `options` are the family's own (options.py records), any left
    out take their defaults."""
    values = check_model_args(arch, depth, **options)
    init = [values.pop(key) for key in ("init", "init_alpha", "init_std")]  # every family's (options.Options)
    zero_init_residual = values.pop("zero_init_residual", False)
    model = FAMILIES[arch].build(depth=depth, num_classes=num_classes, in_channels=in_channels, **values)
    init_weights(model, *init, zero_init_residual)
    return model


def label(arch: str, depth="", options=None) -> str:
    """The net's one name, used by run names, reports, explain commands, the progress bar and the paper's
    tables: family and depth, plus the shortcut where the family has that option: resnet20-A, plain20,
    densenet40 (without a depth, the family's: resnet-A, plain). `options`: the run's model keys (saved
    configs of older runs may hold keys the family no longer has: they are ignored)."""
    options = dict(options or {})
    if arch in FAMILIES:
        options = {**defaults(arch), **{k: v for k, v in options.items() if k in defaults(arch)}}
    shortcut = options.get("shortcut")
    return f"{arch}{depth}" + (f"-{shortcut}" if shortcut is not None else "")


def model_options(model_cfg) -> dict:
    """The build_model keywords of a composed `model` group: every key but `name`."""
    return {key: value for key, value in dict(model_cfg).items() if key != "name"}


def model_from_config(model_cfg, depth, num_classes, in_channels) -> nn.Module:
    """The net a composed config's `model` group and `depth` describe: every key of the group but `name`
    is an option of the family's record."""
    return build_model(arch=model_cfg.name, depth=depth, num_classes=num_classes, in_channels=in_channels,
                       **model_options(model_cfg))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
