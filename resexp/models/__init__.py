"""The registry of model families, one line a family, and the one builder: build_model(arch, depth, **options).

A family declares itself once, in its own module (family.Family: its net, depth rule, options record,
default depth, label, variants, layer count); the `model` config group, the checks, run names, reports,
the papers' lookup, the explain tools, the docs tables and the tests all read FAMILIES.
"""
from torch import nn

from . import options as opts
from .cifar import PLAIN, RESNET, RESNET_BOTTLENECK
from .densenet import DENSENET, DENSENET_BC
from .family import Family
from .highway import HIGHWAY
from .imagenet import IMAGENET_PLAIN, IMAGENET_RESNET
from .init import init_weights
from .linear import LINEAR_DEEP
from .preact import PREACT_RESNET
from .resnext import RESNEXT
from .vgg import VGG_FAMILY
from .wide_resnet import WIDE_RESNET

FAMILIES: dict[str, Family] = {
    "plain": PLAIN,
    "resnet": RESNET,
    "resnet_bottleneck": RESNET_BOTTLENECK,
    "preact_resnet": PREACT_RESNET,
    "highway": HIGHWAY,
    "densenet": DENSENET,
    "densenet_bc": DENSENET_BC,
    "resnext": RESNEXT,
    "vgg": VGG_FAMILY,
    "imagenet_plain": IMAGENET_PLAIN,
    "imagenet_resnet": IMAGENET_RESNET,
    "linear_deep": LINEAR_DEEP,
    "wide_resnet": WIDE_RESNET,
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
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ValueError(f"depth={depth!r} must be an integer")
    family.depth_rule(depth, **values)
    return values


def build_model(arch="resnet", depth=None, num_classes=10, in_channels=3, **options) -> nn.Module:
    """The net of family `arch` at `depth` (None: the family's default depth); `options` are the family's
    own (options.py records), any left out take their defaults."""
    depth = default_depth(arch, options) if depth is None else depth
    values = check_model_args(arch, depth, **options)
    init = [values.pop(key) for key in ("init", "init_alpha", "init_std")]  # every family's (options.Options)
    zero_init_residual = values.pop("zero_init_residual", False)
    model = FAMILIES[arch].build(depth=depth, num_classes=num_classes, in_channels=in_channels, **values)
    init_weights(model, *init, zero_init_residual, values.get("branch_scaling") == "fixup")
    return model


def label(arch: str, depth="", options=None) -> str:
    """The net's one name, used by run names, reports, explain commands, the progress bar and the paper's
    tables, as its family declares it: resnet20-A, plain20, wide_resnet28-10, resnext29-8x64d (without a
    depth, the family's: resnet-A). `options`: the run's model keys, the family's defaults for the others
    (saved configs of older runs may hold keys the family no longer has: they are ignored)."""
    if arch not in FAMILIES:
        return f"{arch}{depth}"
    own = defaults(arch)
    return FAMILIES[arch].name(arch, depth, {**own, **{k: v for k, v in dict(options or {}).items() if k in own}})


def default_depth(arch: str, options=None) -> int:
    """The depth `model=<arch>` builds without a `depth=` (conf/train.yaml reads it), with these options."""
    if arch not in FAMILIES:
        raise ValueError(f"unknown model {arch!r}; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[arch].depth_for({k: v for k, v in dict(options or {}).items() if k in defaults(arch)})


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
