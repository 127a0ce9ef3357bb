"""A model family's options as one typed record: each option's default, what it allows and where its value
comes from, declared once as a dataclass field. The `model` config group, the checks and the builder all
read the records; nothing else lists a family's keys.

    @dataclass
    class ResNetOptions(ConvOptions):
        shortcut: str = choice("A", SHORTCUTS, "where dimensions change (He et al. 2015, sec. 3.3)")
"""
import dataclasses
import math
from dataclasses import dataclass, field

from .activations import ACTIVATIONS
from .init import INITS
from .norms import NORMS


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def choice(default, allowed, doc: str):
    """One of `allowed`."""
    allowed = tuple(allowed)
    return field(default=default, metadata={"test": lambda v: v in allowed, "doc": doc,
                                            "allowed": "choose one of: " + ", ".join(map(str, allowed))})


def integer_rule(low: int):
    """(test, what it allows) of an integer >= low: every integer range of resexp, worded once."""
    what = "a positive integer" if low == 1 else f"an integer >= {low}"
    return lambda v: _number(v) and isinstance(v, int) and v >= low, what


def number_rule(low: float = -math.inf, high: float = math.inf, low_open=False, high_open=False):
    """(test, what it allows) of a number in [low, high], an end open where said: every real range of
    resexp (the families' records and config.RANGES), worded once."""
    high = math.inf if high is None else high

    def test(v):
        return _number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if low == -math.inf and high == math.inf:
        return test, "a number"
    if high == math.inf:
        return test, "a positive number" if low == 0 and low_open else f"a number {'>' if low_open else '>='} {low:g}"
    return test, f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def flag(default: bool, doc: str):
    return field(default=default, metadata={"test": lambda v: isinstance(v, bool), "doc": doc,
                                            "allowed": "it must be true or false"})


def count(default: int, doc: str, low: int = 1):
    """An integer >= low."""
    test, what = integer_rule(low)
    return field(default=default, metadata={"test": test, "doc": doc, "allowed": f"it must be {what}"})


def real(default: float, doc: str, low: float = -math.inf, high: float = math.inf, low_open=False, high_open=False):
    """A number in [low, high], an end open where said."""
    test, what = number_rule(low, high, low_open, high_open)
    return field(default=default, metadata={"test": test, "doc": doc, "allowed": f"it must be {what}"})


@dataclass
class Options:
    """What every family takes: its width and weight init."""
    width: int = count(16, "channels of the first stage; later stages are multiples of it (He et al. 2015: 16)")
    init: str = choice("kaiming_normal", INITS, "kaiming_normal (He et al. 2015b) | kaiming_uniform | xavier | "
                       "orthogonal | normal (N(0, init_std^2)) | scaled_identity")
    init_alpha: float = real(1.0, "scale of the scaled_identity init (> 1 with norm=none makes deep plain nets "
                             "diverge)", low=0, low_open=True)
    init_std: float = real(0.01, "std of the normal init (Simonyan and Zisserman 2015, sec. 3.1: 0.01)", low=0,
                           low_open=True)

    @staticmethod
    def combined(values: dict) -> None:
        """A ValueError naming a combination of the record's options that makes no sense (each value is
        already allowed alone); a record with such rules overrides this."""


@dataclass
class ConvOptions(Options):
    """What every convolutional family takes besides: its activation and norm layers."""
    activation: str = choice("relu", ACTIVATIONS, "relu | leaky_relu | elu | gelu | silu | tanh | sigmoid | "
                             "prelu (He et al. 2015b) | learned_swish (Ramachandran et al. 2017)")
    norm: str = choice("batch", NORMS, "batch (Ioffe and Szegedy 2015) | group (32 groups, Wu and He 2018) | "
                       "layer (Ba et al. 2016) | none")


def option_fields(record) -> dict:
    """{name: dataclasses.Field} of a record class."""
    return {f.name: f for f in dataclasses.fields(record)}


def defaults(record) -> dict:
    return {name: f.default for name, f in option_fields(record).items()}


def check(record, arch: str, values: dict, users) -> dict:
    """`values` completed with the record's defaults; a ValueError naming the first key that is not an option
    of `arch` (with `users(key)`, the families that take it) or whose value is not allowed, or a combination
    the record refuses (its `combined`)."""
    fields = option_fields(record)
    for key, value in values.items():
        if key not in fields:
            takers = users(key)
            if takers:
                raise ValueError(f"model.{key}={value!r} does not apply to model {arch}; it applies to: "
                                 + ", ".join(takers))
            raise ValueError(f"model.{key} is not a model option; model {arch} takes: {', '.join(fields)}")
        meta = fields[key].metadata
        if not meta["test"](value):
            raise ValueError(f"model.{key}={value!r} is invalid; {meta['allowed']}")
    values = {**defaults(record), **values}
    record.combined(values)
    return values
