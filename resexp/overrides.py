"""Command-line overrides as `resexp train` reads them: parsed by Hydra's own parser, swept lists
expanded into one override list per job, each composed into the config that job would run."""
import copy
import functools
import itertools
from contextlib import contextmanager
from importlib import resources

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

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


@contextmanager
def hydra_initialized():
    """Hydra initialized on resexp's configs for the block, once however many jobs are composed in it."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_module("resexp.conf", version_base="1.3"):
        yield


def _shapes_config(override) -> bool:
    """Whether an override picks config files (a group option, hydra/...) or adds or deletes keys, rather
    than setting the value of a key the composed config already has."""
    key = override.key_or_group
    return (override.is_add() or override.is_delete() or override.is_force_add() or key.startswith("hydra")
            or "/" in key or (resources.files("resexp.conf") / key).is_dir())


@functools.lru_cache(maxsize=64)
def _compose(shape: tuple, hydra: bool):
    try:
        with hydra_initialized():
            cfg = compose("train", overrides=list(shape), return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(" ".join(str(e).split("\n")[:2]).strip()) from None
    return cfg


@functools.lru_cache(maxsize=4096)
def _parse_one(line: str):
    return parse([line])[0]


def compose_job(overrides, hydra: bool = False):
    """The composed `train` config of one job's overrides (with `hydra.*` overrides and the `hydra` node
    only when `hydra`); a bad key or group option is one line.

    Hydra composes once per distinct set of config files (group choices, added keys); each job's plain
    `key=value` overrides are then set on a copy as Hydra itself sets them (OmegaConf.update), so a
    sweep over a thousand seeds composes once."""
    parsed = [_parse_one(o) for o in overrides if hydra or not o.startswith("hydra.")]
    shape = tuple(o.input_line for o in parsed if _shapes_config(o))
    cfg = copy.deepcopy(_compose(shape, hydra))
    for o in parsed:
        if not _shapes_config(o):
            try:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
            except (ConfigAttributeError, ConfigKeyError):
                raise UserError(f"Could not override '{o.key_or_group}'. "
                                f"To append to your config use +{o.input_line}") from None
            except OmegaConfBaseException as e:
                raise UserError(f"Error merging override {o.input_line}: {str(e).splitlines()[0]}") from None
    return cfg
