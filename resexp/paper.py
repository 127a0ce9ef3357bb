"""Reference test errors (%) to print beside a run's own, keyed by (dataset, model, depth, shortcut).

Plain nets have no shortcut, so their key uses None. A run looks its configuration up here and
records the number and its source in status.json, so a comparison needs no lookup. Variants of the
model options (He et al. 2016, Tables 1 and 2) are looked up by the options that make them; a
variant the paper could not train is recorded as FAIL ("fail": a test error above 20%).
"""
from .models import DEFAULTS
HE_2015_TABLE_6 = "He et al. 2015, Table 6 (CIFAR-10, option A; best of 5 runs for 110, mean 6.61±0.16)"
HE_2016_TABLE_3 = "He et al. 2016, Identity Mappings, Table 3 (original post-activation bottleneck ResNet-164)"
# The paper shows plain nets only as curves (Fig. 6). A careful public reproduction of the paper's
# recipe (5 seeds each) measured these; the numbers are as cited in resexp issue 5.
REPRODUCTION = "public reproduction of the paper's CIFAR-10 recipe, mean±std over 5 seeds (resexp issue 5)"

REFERENCES = {
    ("cifar10", "resnet", 20, "A"): (8.75, HE_2015_TABLE_6),
    ("cifar10", "resnet", 32, "A"): (7.51, HE_2015_TABLE_6),
    ("cifar10", "resnet", 44, "A"): (7.17, HE_2015_TABLE_6),
    ("cifar10", "resnet", 56, "A"): (6.97, HE_2015_TABLE_6),
    ("cifar10", "resnet", 110, "A"): (6.43, HE_2015_TABLE_6),
    ("cifar10", "resnet", 1202, "A"): (7.93, HE_2015_TABLE_6),
    ("cifar10", "plain", 20, None): (9.78, REPRODUCTION + ": 9.78±0.13"),
    ("cifar10", "plain", 56, None): (12.95, REPRODUCTION + ": 12.95±0.22"),
    ("cifar10", "resnet_bottleneck", 164, "B"): (5.93, HE_2016_TABLE_3),
    ("cifar100", "resnet_bottleneck", 164, "B"): (25.16, HE_2016_TABLE_3),
}

FAIL = "fail"  # He et al. 2016, Table 1: "fail" means a test error above 20%
HE_2016_TABLE_1 = "He et al. 2016, Identity Mappings, Table 1 (ResNet-110, CIFAR-10, shortcut variants)"
HE_2016_TABLE_2 = "He et al. 2016, Identity Mappings, Table 2 (CIFAR-10, where BN and ReLU sit, Fig. 4)"
HE_2016_TABLE_4 = "He et al. 2016, Identity Mappings, Table 4 (pre-activation ResNets, mean of 5 runs)"

# (dataset, model, depth, {options that make the variant}) -> (test error %, source); option values
# the paper does not vary keep resexp's defaults (block order original, identity shortcuts).
VARIANTS = [
    *[(("cifar10", "resnet", 110, {"shortcut_kind": "scaling", "shortcut_scale": scale}), (FAIL, HE_2016_TABLE_1))
      for scale in (0.0, 0.5)],  # 0: no shortcut, a plain net; 0.5 on the shortcut only
    *[(("cifar10", "resnet", 110, {"shortcut_kind": "exclusive_gating", "gate_bias": float(b)}),
       (FAIL, HE_2016_TABLE_1)) for b in range(0, -6, -1)],  # gate bias 0 to -5
    (("cifar10", "resnet", 110, {"shortcut_kind": "exclusive_gating", "gate_bias": -6.0}), (8.70, HE_2016_TABLE_1)),
    (("cifar10", "resnet", 110, {"shortcut_kind": "exclusive_gating", "gate_bias": -7.0}), (9.81, HE_2016_TABLE_1)),
    (("cifar10", "resnet", 110, {"shortcut_kind": "shortcut_gating", "gate_bias": 0.0}), (12.86, HE_2016_TABLE_1)),
    (("cifar10", "resnet", 110, {"shortcut_kind": "shortcut_gating", "gate_bias": -6.0}), (6.91, HE_2016_TABLE_1)),
    (("cifar10", "resnet", 110, {"shortcut_kind": "conv1x1"}), (12.22, HE_2016_TABLE_1)),
    (("cifar10", "resnet", 110, {"shortcut_kind": "dropout", "shortcut_dropout": 0.5}), (FAIL, HE_2016_TABLE_1)),
    *[(("cifar10", model, depth, {"block_order": order}), (error, HE_2016_TABLE_2))
      for model, depth, errors in (("resnet", 110, (8.17, 7.84, 6.71, 6.37)),
                                   ("resnet_bottleneck", 164, (6.50, 6.14, 5.91, 5.46)))
      for order, error in zip(("bn_after_add", "relu_before_add", "relu_preact", "full_preact"), errors)],
    (("cifar10", "preact_resnet", 110, {"block": "basic"}), (6.37, HE_2016_TABLE_4)),
    (("cifar10", "preact_resnet", 164, {"block": "bottleneck"}), (5.46, HE_2016_TABLE_4)),
    (("cifar10", "preact_resnet", 1001, {"block": "bottleneck"}), (4.92, HE_2016_TABLE_4)),
    (("cifar100", "preact_resnet", 164, {"block": "bottleneck"}), (24.33, HE_2016_TABLE_4)),
    (("cifar100", "preact_resnet", 1001, {"block": "bottleneck"}), (22.71, HE_2016_TABLE_4)),
]
# The options whose non-default values make another architecture than the key's; a run with one of
# them has the reference of a variant listed above, or none. (Width, norm and init are the run's
# recipe, compared with the paper's net as before.)
VARIANT_KEYS = ("block_order", "skip", "shortcut_kind")

# The same reproduction's residual nets, for judging seed-to-seed spread (mean, std over 5 seeds).
REPRODUCED_RESNETS = {20: (8.51, 0.22), 56: (7.40, 0.27), 110: (7.14, 0.20)}


def _variant(dataset, model, depth, options) -> tuple | None:
    """(error, source) of the paper's variant these model options make, or None."""
    changed = {key: options[key] for key in VARIANT_KEYS if key in options and options[key] != DEFAULTS[key]}
    for (d, m, n, made_by), found in VARIANTS:
        relevant = {key: options.get(key, DEFAULTS[key]) for key in made_by}
        rest = {key: value for key, value in changed.items() if key not in made_by}
        if (d, m, n) == (dataset, model, depth) and relevant == made_by and not rest:
            return found
    return None if changed else REFERENCES.get(
        (dataset, model, depth, None if "plain" in model else options.get("shortcut")))


def reference(dataset: str, model: str, depth: int, shortcut: str, options=None) -> dict:
    """{"paper_test_error": % or FAIL, "paper_source": ..., "paper_dataset": the dataset the number is for}
    for this configuration, or {} when none is known; a report shows the number only beside runs on that
    dataset. `options`: the run's model group (block_order, shortcut_kind, ...); without it the defaults."""
    found = _variant(dataset, model, depth, {**dict(options or {}), "shortcut": shortcut})
    if found is None:
        return {}
    error, source = found
    return {"paper_test_error": error, "paper_source": source, "paper_dataset": dataset}


# Multiply-adds for one 224x224 image, in billions. He et al. 2015 call them FLOPs: "3.6 billion FLOPs
# (multiply-adds)" (sec. 3.3); Table 1's bottom row for 18..152 layers (plain and residual alike), sec. 3.3
# for VGG-19 and sec. 4.1 for VGG-16 ("VGG-16/19 nets (15.3/19.6 billion FLOPs)").
HE_2015_MULT_ADDS = {("imagenet_plain", 18): 1.8, ("imagenet_resnet", 18): 1.8, ("imagenet_plain", 34): 3.6,
                     ("imagenet_resnet", 34): 3.6, ("imagenet_resnet", 50): 3.8, ("imagenet_resnet", 101): 7.6,
                     ("imagenet_resnet", 152): 11.3, ("vgg", 16): 15.3, ("vgg", 19): 19.6}
# torchvision's published "GFLOPS" (multiply-adds, 224x224) of resnet18..152, from the table of its models
# documentation. Its bottleneck blocks stride in the 3x3 conv ("ResNet v1.5"), as resexp's do; He et al.'s
# stride in the first 1x1 conv, which costs less.
TORCHVISION_MULT_ADDS = {18: 1.814, 34: 3.664, 50: 4.089, 101: 7.801, 152: 11.514}
