"""He et al. 2016, "Identity Mappings in Deep Residual Networks": the CIFAR nets with full pre-activation
units (BN and ReLU before each conv, Fig. 4e), no norm or activation after the first conv (each unit starts
with its own) and one norm and activation before the pool (sec. 4.1). Basic units (depth 6n+2, ResNet-110)
or bottlenecks (9n+2, ResNet-164 and -1001); the preset `model=preact_resnet_bottleneck` is the latter.
"""
from dataclasses import dataclass

from .cifar import SKIP, CifarNet, ResidualOptions, cifar_depth
from .family import Family
from .options import choice, flag


def preact_net(block, **options):
    return CifarNet(block, block_order="full_preact", preact=True, **options)


def preact_depth(depth, block="basic", skip=2, **options):
    if block == "bottleneck" and skip != 2:
        raise ValueError("model.skip applies to basic blocks; a bottleneck always spans 3 convs (1x1, 3x3, 1x1)")
    return cifar_depth(block)(depth, skip=skip, **options)


def preact_label(family, depth, options) -> str:
    """preact_resnet110-A; a bottleneck net is named as its preset, preact_resnet_bottleneck164-B."""
    kind = "_bottleneck" if options.get("block") == "bottleneck" else ""
    return f"{family}{kind}{depth}-{options['shortcut']}"


@dataclass
class PreactOptions(ResidualOptions):
    """He et al. 2016's full pre-activation units; the CIFAR nets are "the same as [1]" (option A)."""
    projection_norm: bool = flag(False, "no BN after a projection's 1x1 conv, as in the official "
                                 "resnet-pre-act.lua (ResNet-164: 1,703,258 parameters)")
    block: str = choice("basic", ("basic", "bottleneck"), "basic (two 3x3 convs) | bottleneck (1x1-3x3-1x1, 4x "
                        "expansion; ResNet-164, -1001)")
    skip: int = choice(**SKIP)


def preact_default_depth(block="basic", **_) -> int:
    """ResNet-110 of basic units, ResNet-164 of bottlenecks (Tables 2-4)."""
    return 164 if block == "bottleneck" else 110


PREACT_RESNET = Family(preact_net, preact_depth, PreactOptions, default_depth=preact_default_depth,
                       source="He et al. 2016, Identity Mappings, Tables 2-4", label=preact_label,
                       label_keys=("block", "shortcut"),
                       variants=("block", "skip", "shortcut_kind", "residual_scale", "branch_scaling"))
