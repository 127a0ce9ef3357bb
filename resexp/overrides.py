"""Command-line overrides as `resexp train` reads them: parsed by Hydra's own parser, swept lists
expanded into one override list per job, each composed into the config that job would run."""
import itertools

from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError


def parse(overrides):
    """Hydra's parsed overrides; a syntax error is one line."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as e:
        raise UserError(str(e).splitlines()[0]) from None


def values(override) -> list[str]:
    """The values an override takes, in sweep order: one for a plain override, each of a discrete
    sweep (`depth=20,56`, `choice(...)`, `range(...)`); interval sweeps (for optimizing sweepers) give []."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if not override.is_discrete_sweep():
        return []
    return list(override.sweep_string_iterator())


def sweep_jobs(overrides) -> list[list[str]]:
    """One override list per job, as Hydra's basic sweeper orders them (the cross product, the last
    override varying fastest). `resexp train -m depth=20,56 model=plain,resnet` -> 4 lists."""
    parsed = parse(overrides)
    keys = [o.get_key_element() for o in parsed]
    choices = [values(o) for o in parsed]
    for o, vals in zip(parsed, choices):
        if not vals:
            raise UserError(f"'{o.input_line}' is an interval sweep; list the values (a,b,c), or use range()")
    return [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*choices)]


def compose_job(overrides):
    """The composed `train` config of one job's overrides (`hydra.*` overrides left out); a bad key or
    group option is one line."""
    try:
        with initialize_config_module("resexp.conf", version_base="1.3"):
            return compose("train", overrides=[o for o in overrides if not o.startswith("hydra.")])
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(" ".join(str(e).split("\n")[:2]).strip()) from None
