"""What a model family is, declared once in its own module: `Family(...)`, one line of the registry
(models/__init__.py FAMILIES) names it. Everything else (the `model` config group, the checks, run
names, reports, the papers' lookup, the explain tools, the docs tables and the tests) reads it here.

    WIDE_RESNET = Family(WideResNet, wide_depth, WideOptions, default_depth=28, label="{widen}",
                         variants=("widen",), layers=lambda depth, **_: depth - 2)
"""
import string
from dataclasses import dataclass
from typing import Callable

from .options import defaults

MAX_DEPTH = 2000  # smallest_depth looks no further (the deepest net of the papers: ResNet-1202)


def depth_rule(step: int, offset: int = 2):
    """depth -> n for depth = step * n + offset, or a ValueError naming the nearest valid depths."""
    def blocks_per_stage(depth: int) -> int:
        n, rest = divmod(depth - offset, step)
        if n >= 1 and rest == 0:
            return n
        nearest = sorted({max(step + offset, step * n + offset), step * max(1, n + 1) + offset})
        raise ValueError(f"depth={depth} is not of the form {step}n+{offset} with n >= 1; nearest valid depths: "
                         + ", ".join(map(str, nearest)))
    return blocks_per_stage


def depth_table(table: dict, family: str):
    """The depth check of a family built from a table of depths (VGG, ImageNet): depth -> its row."""
    def check(depth: int, **_):
        if depth not in table:
            raise ValueError(f"depth={depth} is not defined for model {family}; valid depths: "
                             + ", ".join(map(str, table)))
        return table[depth]
    return check


def as_counted(depth: int, **_) -> int:
    """The papers' usual count: depth is the number of weighted layers on the main path."""
    return depth


@dataclass(frozen=True)
class Family:
    build: Callable         # the net: keywords depth, num_classes, in_channels and the record's options but init's
    depth_rule: Callable    # (depth, **options) -> anything; a ValueError naming the valid depths
    options: type           # the options record (a dataclass of options.py fields)
    # The depth its paper uses most: what `model=<family>` trains without a depth (an int, or a function of
    # the options where they change the paper's net: (**options) -> depth).
    default_depth: int | Callable
    source: str             # the paper, for the docs' family list
    # What names a net after its family and depth: a str.format over the options ("{shortcut}": resnet20-A),
    # or a function (family name, depth, options) -> the whole label with `label_keys` the options it reads.
    label: str | Callable = ""
    label_keys: tuple = ()
    # Options whose values make another architecture than the family's default net: a paper's number is
    # for one of them only where its row names it (width, norm and init are the recipe, not the net).
    variants: tuple = ()
    # (depth, **options) -> the conv and linear layers on the main path (what describe counts); the papers
    # count depth so for most families, not for all (WRN-d counts its 3 shortcut projections, d - 2 remain).
    layers: Callable = as_counted

    def name(self, family: str, depth, options: dict) -> str:
        """The net's one name: `resnet56-A`, `wide_resnet28-10`, `densenet40`; without a depth, the family's."""
        if callable(self.label):
            return self.label(family, depth, options)
        return f"{family}{depth}" + (f"-{self.label.format(**options)}" if self.label else "")

    def depth_for(self, options: dict) -> int:
        """The default depth with these options (the record's defaults for the others)."""
        if callable(self.default_depth):
            return self.default_depth(**{**defaults(self.options), **options})
        return self.default_depth

    def shown(self) -> tuple:
        """The options the label shows (run names leave them out of their suffix)."""
        if callable(self.label):
            return self.label_keys
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.label) if f)

    def smallest_depth(self, **options) -> int:
        """The smallest depth its rule accepts with these options (the record's defaults for the others)."""
        values = {**defaults(self.options), **options}
        for depth in range(1, MAX_DEPTH):
            try:
                self.depth_rule(depth, **values)
                return depth
            except ValueError:
                continue
        raise ValueError(f"no depth below {MAX_DEPTH} is valid")
