"""The papers' published test errors (%), to print beside a run's own: every one with its paper and
table, its statistic and its dataset, and the resexp configuration that builds the paper's net.

A run looks its configuration up here (`reference`) and records the number, its source and its
statistic in status.json, so a comparison needs no lookup. The statistics differ between papers and
must not be mixed: He et al. 2015 print one run per net, and for ResNet-110 the best of 5 runs (Table
6 caption); He et al. 2016 print the median of 5 runs, with mean±std in brackets where they give it
(sec. 3.1, Table 4 caption); Xie et al. 2017 the mean of 10 runs (Table 7); Zagoruyko and Komodakis 2016
the median of 5 runs (Tables 5 and 6). Where the paper could not
train a net it prints "fail" (FAIL: a test error above 20%).
"""
from dataclasses import dataclass, field

from .models import FAMILIES, defaults

FAIL = "fail"  # He et al. 2016, Table 1 caption: "fail" when the test error is higher than 20%
FAIL_MEANS = "fail (>20%)"  # how a report prints FAIL

# The statistics, as the papers state them.
ONE_RUN = "one run"
BEST_OF_5 = "best of 5 runs"
MEDIAN_OF_5 = "median of 5 runs"
MEAN_OF_10 = "mean of 10 runs"
NOT_STATED = "runs not stated"
TEN_CROP = "one model, 10-crop testing, validation set"


@dataclass(frozen=True)
class Published:
    error: float | str   # test error, %; or FAIL
    source: str          # paper, table(s) and net as printed
    statistic: str       # one of the statistics above
    dataset: str         # resexp's name of the dataset the number is for
    model: str | None    # the resexp family that builds the net; None where no resexp config does
    depth: int | None
    options: dict = field(default_factory=dict)  # the model options that make the net (shortcut included)
    mean: float | None = None  # mean and std over the runs, where the paper prints them
    std: float | None = None
    note: str = ""       # why a comparison with resexp's run is loose
    batch_size: int | None = None  # the paper's batch, where its numbers for one net differ by it

    def statistic_text(self) -> str:
        """'median of 5 runs (mean 4.89±0.14)'."""
        spread = f" (mean {self.mean:.2f}±{self.std:.2f})" if self.mean is not None else ""
        return self.statistic + spread

    def record(self) -> dict:
        """The status.json fields of this reference."""
        return {"paper_test_error": self.error, "paper_source": self.source,
                "paper_statistic": self.statistic_text(), "paper_dataset": self.dataset,
                **({"paper_note": self.note} if self.note else {})}


def _rows(source, statistic, dataset, model, options, by_depth, **extra):
    """One Published per (depth, error) of `by_depth`, sharing everything else."""
    return [Published(error, source, statistic, dataset, model, depth, options, **extra) for depth, error in by_depth]


A, B = {"shortcut": "A"}, {"shortcut": "B"}  # He et al. 2016's CIFAR nets: option A as in He et al. 2015
# (appendix: "the same as [1]"); projections only where the bottleneck nets increase dimensions.
PREACT_BOTTLENECK = {"block": "bottleneck", **B}
HE_2015 = "He et al. 2015"
HE_2016 = "He et al. 2016, Identity Mappings"

PUBLISHED = [
    # He et al. 2015, Table 6: CIFAR-10, option A.
    *_rows(f"{HE_2015}, Table 6, ResNet", ONE_RUN, "cifar10", "resnet", A,
           [(20, 8.75), (32, 7.51), (44, 7.17), (56, 6.97), (1202, 7.93)]),
    Published(6.43, f"{HE_2015}, Table 6, ResNet-110", BEST_OF_5, "cifar10", "resnet", 110, A, mean=6.61, std=0.16),
    # Table 6 quotes Srivastava et al.'s highway nets: their own layers and widths, not resexp's highway
    # (the ResNet layout with gated blocks); 19 layers is no depth of resexp's.
    Published(7.54, f"{HE_2015}, Table 6, Highway (Srivastava et al.), 19 layers", "best of Srivastava et al.'s runs",
              "cifar10", None, 19, mean=7.72, std=0.16),
    Published(8.80, f"{HE_2015}, Table 6, Highway (Srivastava et al.), 32 layers", ONE_RUN, "cifar10", "highway", 32,
              A, note="Srivastava et al.'s highway net, a different architecture from resexp's highway"),
    # He et al. 2016, Table 1 (CIFAR-10, ResNet-110, shortcut variants on every unit).
    Published(6.61, f"{HE_2016}, Tables 1-3, original ResNet-110", MEDIAN_OF_5, "cifar10", "resnet", 110, A),
    *[Published(FAIL, f"{HE_2016}, Table 1, constant scaling {scale} on the shortcut", MEDIAN_OF_5, "cifar10",
                "resnet", 110, {**A, "shortcut_kind": "scaling", "shortcut_scale": scale})
      for scale in (0.0, 0.5)],  # 0: no shortcut, a plain net
    Published(12.35, f"{HE_2016}, Table 1, constant scaling 0.5 on the shortcut and 0.5 on F (frozen gating)",
              MEDIAN_OF_5, "cifar10", "resnet", 110,
              {**A, "shortcut_kind": "scaling", "shortcut_scale": 0.5, "residual_scale": 0.5}),
    *[Published(FAIL, f"{HE_2016}, Table 1, exclusive gating, gate bias {b}", MEDIAN_OF_5, "cifar10", "resnet", 110,
                {**A, "shortcut_kind": "exclusive_gating", "gate_bias": float(b)}) for b in range(0, -6, -1)],
    *[Published(error, f"{HE_2016}, Table 1, {kind.replace('_', ' ')}, gate bias {b}", MEDIAN_OF_5, "cifar10",
                "resnet", 110, {**A, "shortcut_kind": kind, "gate_bias": b})
      for kind, b, error in (("exclusive_gating", -6.0, 8.70), ("exclusive_gating", -7.0, 9.81),
                             ("shortcut_gating", 0.0, 12.86), ("shortcut_gating", -6.0, 6.91))],
    Published(12.22, f"{HE_2016}, Table 1, 1x1 conv shortcut", MEDIAN_OF_5, "cifar10", "resnet", 110,
              {**A, "shortcut_kind": "conv1x1"}),
    Published(FAIL, f"{HE_2016}, Table 1, dropout 0.5 on the shortcut", MEDIAN_OF_5, "cifar10", "resnet", 110,
              {**A, "shortcut_kind": "dropout", "shortcut_dropout": 0.5}),
    # Table 2: where BN and ReLU sit (Fig. 4), CIFAR-10. Table 3 repeats full pre-activation.
    *[Published(error, f"{HE_2016}, Table {'2 and 3' if order == 'full_preact' else 2}, ResNet-{depth}, "
                       f"{order.replace('_', ' ')}", MEDIAN_OF_5, "cifar10", model, depth, {**shortcut, "block_order": order})
      for model, depth, shortcut, errors in (("resnet", 110, A, (8.17, 7.84, 6.71, 6.37)),
                                             ("resnet_bottleneck", 164, B, (6.50, 6.14, 5.91, 5.46)))
      for order, error in zip(("bn_after_add", "relu_before_add", "relu_preact", "full_preact"), errors)],
    # Table 3: original and pre-activation units (and Table 4 for the nets it repeats).
    Published(5.93, f"{HE_2016}, Tables 2 and 3, original ResNet-164", MEDIAN_OF_5, "cifar10", "resnet_bottleneck",
              164, B),
    Published(25.16, f"{HE_2016}, Tables 3 and 4, original ResNet-164", MEDIAN_OF_5, "cifar100", "resnet_bottleneck",
              164, B),
    Published(7.61, f"{HE_2016}, Table 3, original ResNet-1001", MEDIAN_OF_5, "cifar10", "resnet_bottleneck", 1001, B),
    Published(27.82, f"{HE_2016}, Tables 3 and 4, original ResNet-1001", MEDIAN_OF_5, "cifar100", "resnet_bottleneck",
              1001, B),
    Published(9.90, f"{HE_2016}, Table 3, original ResNet-110 (1-layer skips)", MEDIAN_OF_5, "cifar10", "resnet", 110,
              {**A, "skip": 1}),
    *[Published(8.91, f"{HE_2016}, Table 3, pre-activation ResNet-110 (1-layer skips)", MEDIAN_OF_5, "cifar10", model,
                110, {**A, "skip": 1, **options})
      for model, options in (("resnet", {"block_order": "full_preact"}), ("preact_resnet", {"block": "basic"}))],
    Published(6.37, f"{HE_2016}, Tables 2 and 3, pre-activation ResNet-110", MEDIAN_OF_5, "cifar10", "preact_resnet",
              110, {**A, "block": "basic"}),
    Published(5.46, f"{HE_2016}, Tables 2-4, pre-activation ResNet-164", MEDIAN_OF_5, "cifar10", "preact_resnet", 164,
              PREACT_BOTTLENECK),
    Published(24.33, f"{HE_2016}, Tables 3 and 4, pre-activation ResNet-164", MEDIAN_OF_5, "cifar100", "preact_resnet",
              164, PREACT_BOTTLENECK),
    Published(4.92, f"{HE_2016}, Tables 3 and 4, pre-activation ResNet-1001, batch 128", MEDIAN_OF_5, "cifar10",
              "preact_resnet", 1001, PREACT_BOTTLENECK, mean=4.89, std=0.14, batch_size=128),
    Published(4.62, f"{HE_2016}, Table 4, pre-activation ResNet-1001, batch 64 (the official code's)", MEDIAN_OF_5,
              "cifar10", "preact_resnet", 1001, PREACT_BOTTLENECK, mean=4.69, std=0.20, batch_size=64),
    Published(22.71, f"{HE_2016}, Tables 3 and 4, pre-activation ResNet-1001, batch 128", MEDIAN_OF_5, "cifar100",
              "preact_resnet", 1001, PREACT_BOTTLENECK, mean=22.68, std=0.22),
    # Huang et al. 2017, DenseNet, Table 2: C10+ and C100+ (standard augmentation), k = 12.
    *[Published(error, f"Huang et al. 2017, Table 2, {net}", NOT_STATED, dataset, model, depth, options,
                note="the paper trains 300 epochs at batch 64 with Nesterov momentum")
      for net, model, depth, options, errors in (
          ("DenseNet (L=40, k=12)", "densenet", 40, {"growth": 12}, (5.24, 24.42)),
          ("DenseNet-BC (L=100, k=12)", "densenet_bc", 100, {"growth": 12, "bottleneck": True, "compression": 0.5},
           (4.51, 22.27)))
      for dataset, error in zip(("cifar10", "cifar100"), errors)],
    # Xie et al. 2017, ResNeXt, Table 7.
    *[Published(error, f"Xie et al. 2017, Table 7, ResNeXt-29 {cardinality}x64d", MEAN_OF_10, dataset, "resnext", 29,
                {"cardinality": cardinality, "base_width": 64},
                note="the paper trains pre-activation bottlenecks at batch 256, weight decay 5e-4")
      for cardinality, errors in ((8, (3.65, 17.77)), (16, (3.58, 17.31)))
      for dataset, error in zip(("cifar10", "cifar100"), errors)],
    # Zagoruyko and Komodakis 2016, WRN-28-10, in the versions from arXiv v2 on: mean/std normalization, flip and
    # translation (v1's Table 4 numbers are for ZCA-whitened images, 4.17 and 20.50). Table 5 (no dropout) and
    # Table 6 (dropout 0.3 between the convs) give the median of 5 runs (their captions; the authors' README too).
    *[Published(error, f"Zagoruyko and Komodakis 2016, Table {table}, WRN-28-10{net}", MEDIAN_OF_5, dataset,
                "wide_resnet", 28, {"widen": 10, "dropout": dropout},
                note="the paper trains 200 epochs at batch 128, weight decay 5e-4, Nesterov momentum")
      for table, net, dropout, errors in (("5 and 6", "", 0.0, (4.00, 19.25)), (6, ", dropout 0.3", 0.3, (3.89, 18.85)))
      for dataset, error in zip(("cifar10", "cifar100"), errors)],
    # He et al. 2015, Tables 2 and 3: ImageNet top-1 error (Table 2's nets use option A; Table 3 adds B
    # and C for ResNet-34, and its 50/101/152 use B).
    *[Published(error, f"{HE_2015}, Table {table}, {net}", TEN_CROP, "imagenet", model, depth, options)
      for table, net, model, depth, options, error in (
          (2, "plain-18", "imagenet_plain", 18, {}, 27.94), (2, "plain-34", "imagenet_plain", 34, {}, 28.54),
          (2, "ResNet-18", "imagenet_resnet", 18, A, 27.88), ("2 and 3", "ResNet-34 A", "imagenet_resnet", 34, A, 25.03),
          (3, "ResNet-34 B", "imagenet_resnet", 34, B, 24.52),
          (3, "ResNet-34 C", "imagenet_resnet", 34, {"shortcut": "C"}, 24.19),
          (3, "ResNet-50", "imagenet_resnet", 50, B, 22.85), (3, "ResNet-101", "imagenet_resnet", 101, B, 21.75),
          (3, "ResNet-152", "imagenet_resnet", 152, B, 21.43))],
]

def _matches(row: Published, dataset, model, depth, options) -> bool:
    """The row's net is the run's: same dataset, family and depth, every option the row names at its value,
    and every option that changes the net (the family's `variants`) at its default unless the row names it.
    (Width, norm, init and the projection's norm are the run's recipe, compared with the paper's net.)"""
    if (row.dataset, row.model, row.depth) != (dataset, model, depth):
        return False
    family = FAMILIES.get(model)
    base = defaults(model) if family else {}  # the family's own defaults
    if any(options.get(key, base.get(key)) != value for key, value in row.options.items()):
        return False
    variants = family.variants if family else ()
    return all(key in row.options for key in variants if key in base and options.get(key, base[key]) != base[key])


def published(dataset: str, model: str, depth: int, options=None) -> list[Published]:
    """Every published number for this configuration, in PUBLISHED's order (the first is the one a
    report compares with). `options`: the run's model group (its family's defaults where it has no key)."""
    options = dict(options or {})
    return [row for row in PUBLISHED if _matches(row, dataset, model, depth, options)]


def reference(dataset: str, model: str, depth: int, options=None, batch_size=None) -> dict:
    """The status.json fields for this configuration: paper_test_error (% or FAIL), paper_source (paper,
    table, net), paper_statistic, paper_dataset, paper_note where the comparison is loose, and paper_also
    (the other published numbers for the same net, e.g. He et al. 2016's median beside He et al. 2015's
    best); {} when no paper has a number for it. A report shows the number only beside runs on that dataset."""
    rows = published(dataset, model, depth, options)
    if not rows:
        return {}
    # a run at a batch the paper also trained at is compared with that number first (sorted() is stable)
    rows = sorted(rows, key=lambda row: row.batch_size is not None and row.batch_size != batch_size)
    first, *also = rows
    return {**first.record(), **({"paper_also": [row.record() for row in also]} if also else {})}


# Multiply-adds for one 224x224 image, in billions. He et al. 2015 call them FLOPs: "3.6 billion FLOPs
# (multiply-adds)" (sec. 3.3); Table 1's bottom row for 18..152 layers (plain and residual alike), sec. 3.3
# for VGG-19 and sec. 4.1 for VGG-16 ("VGG-16/19 nets (15.3/19.6 billion FLOPs)").
HE_2015_MULT_ADDS = {("imagenet_plain", 18): 1.8, ("imagenet_resnet", 18): 1.8, ("imagenet_plain", 34): 3.6,
                     ("imagenet_resnet", 34): 3.6, ("imagenet_resnet", 50): 3.8, ("imagenet_resnet", 101): 7.6,
                     ("imagenet_resnet", 152): 11.3, ("vgg", 16): 15.3, ("vgg", 19): 19.6}
# torchvision's "GFLOPS" (multiply-adds, 224x224) of resnet18..152, three decimals: the `_ops` field of its
# weight metadata (torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"], ...); its documentation
# table rounds them to two. Its bottleneck blocks stride in the 3x3 conv ("ResNet v1.5"), as resexp's do;
# He et al.'s stride in the first 1x1 conv, which costs less.
TORCHVISION_MULT_ADDS = {18: 1.814, 34: 3.664, 50: 4.089, 101: 7.801, 152: 11.514}
