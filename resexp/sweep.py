"""Sweeps as a library (the train command, explain, bench and doctor use it): command-line overrides parsed
by Hydra's own parser, swept lists expanded into one override list per job, each composed into the config
that job would run and checked before any job starts."""
import copy
import difflib
import functools
import itertools
import shutil
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from . import config as _config
from .errors import UserError
from .files import check_writable
from .models import families_with, model_options
from .track.mlflow import check_installed


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
def parse_one(line: str):
    return parse([line])[0]


def compose_job(overrides, hydra: bool = False):
    """The composed `train` config of one job's overrides (with `hydra.*` overrides and the `hydra` node
    only when `hydra`); a bad key or group option is one line.

    Hydra composes once per distinct set of config files (group choices, added keys); each job's plain
    `key=value` overrides are then set on a copy as Hydra itself sets them (OmegaConf.update), so a
    sweep over a thousand seeds composes once."""
    parsed = [parse_one(o) for o in overrides if hydra or not o.startswith("hydra.")]
    shape = tuple(o.input_line for o in parsed if _shapes_config(o))
    cfg = copy.deepcopy(_compose(shape, hydra))
    for o in parsed:
        if not _shapes_config(o):
            try:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
            except (ConfigAttributeError, ConfigKeyError):
                raise UserError(unknown_key(o.key_or_group, cfg)) from None
            except OmegaConfBaseException as e:
                raise UserError(f"Error merging override {o.input_line}: {str(e).splitlines()[0]}") from None
    return cfg


def unknown_key(key: str, cfg) -> str:
    """One line for a key the config does not have, naming the nearest keys and groups it has."""
    def keys(node, prefix=""):
        for k, v in node.items():
            yield from keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    takers = families_with(key.removeprefix("model.")) if key.startswith("model.") else []
    if takers:  # another family's option
        return f"{key} does not apply to model {cfg.model.name}; it applies to: {', '.join(takers)}"
    known = [*keys(OmegaConf.to_container(cfg, resolve=False)), *_config.GROUPS]
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}?" if near else "`resexp train --help` lists the groups and keys"
    return f"{key} is not a config key; {hint} (add a new key with +{key}=...)"


def precheck(overrides, multirun: bool) -> list[str]:
    """Compose and validate every job of the sweep (one job without -m) before Hydra runs: every invalid
    combination is reported in one message, before any job starts or any directory is made.

    Returns the Hydra overrides to add: one that leaves out of the run names every key whose value is the
    same in all jobs (resexp/names.py), so a sweep's runs are named by what differs between them, and the
    sweep directory with its time resolved."""
    parsed = parse(overrides)
    for o in parsed:
        key = o.get_key_element().lstrip("+~")
        if o.is_sweep_override() and not multirun:
            raise UserError(f"'{o.input_line}' sweeps several values; add -m to run a multirun sweep")
        if key in _config.GROUPS:
            for v in values(o):
                _config.check_group_option(key, v)
    first = [f"{o.get_key_element()}={values(o)[0]}" for o in parsed if values(o)]
    with hydra_initialized():
        try:
            base = compose_job([o for o in first if not o.startswith("hydra.")], hydra=True)
        except UserError as e:
            raise UserError(f"{e}{_plugin_hint(first)}") from None
    _check_launcher(base)
    check_installed(base.hydra.callbacks)
    chosen = {o.get_key_element(): values(o)[0] for o in parsed if values(o)}
    output = base.hydra.sweep if multirun else base.hydra.run
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    check_writable(f"{key}=", chosen.get(key) or _static_part(OmegaConf.to_container(output)["dir"]), directory=True)
    if not multirun:
        preset = [str(k) for k in base.hydra.sweeper.params or {} if str(k) not in chosen]
        if preset:
            raise UserError(f"the experiment preset sweeps {', '.join(preset)}; add -m to run its sweep "
                            f"(or give {' and '.join(f'{k}=VALUE' for k in preset)} to run one of its jobs)")
        cfg = compose_job(overrides)
        _config.validate(cfg)
        _config.prepare_determinism([cfg])
        return []
    with hydra_initialized():  # once for every job
        jobs = sweep_jobs(_with_preset_sweep(overrides, base.hydra.sweeper.params))
        failures = {}  # message -> indices of the jobs failing with it
        cfgs = []
        for i, job in enumerate(jobs):
            try:
                cfgs.append(compose_job(job))
                _config.validate(cfgs[-1])
            except UserError as e:
                failures.setdefault(str(e), []).append(i)
    differ = _differing(jobs)
    if failures:
        raise UserError(_failure_message(failures, jobs, differ))
    _config.prepare_determinism(cfgs)
    keys = dict.fromkeys(line.partition("=")[0].lstrip("+~") for job in jobs for line in job)
    same = [k for k in keys if k not in differ and not k.startswith("hydra")]
    exclude = [*(k for k in base.hydra.job.config.override_dirname.exclude_keys if k not in differ), *same]
    # The sweep directory, fixed now (its default holds the time), so that its outcome can be read back.
    given = any(o.get_key_element() == "hydra.sweep.dir" for o in parsed)
    return [f"hydra.job.config.override_dirname.exclude_keys=[{','.join(exclude)}]",
            *([] if given else [f"hydra.sweep.dir={base.hydra.sweep.dir}"])]


# Hydra's launcher and sweeper plugins, by the option that picks them, and the package that brings each.
PLUGINS = {"hydra/launcher": {"joblib": "hydra-joblib-launcher (pip install 'resexp[joblib]')",
                              "slurm": "hydra-submitit-launcher (pip install 'resexp[slurm]')",
                              "submitit_slurm": "hydra-submitit-launcher (pip install 'resexp[slurm]')",
                              "submitit_local": "hydra-submitit-launcher", "rq": "hydra-rq-launcher",
                              "ray": "hydra-ray-launcher", "ray_aws": "hydra-ray-launcher"},
           "hydra/sweeper": {"optuna": "hydra-optuna-sweeper", "ax": "hydra-ax-sweeper",
                             "nevergrad": "hydra-nevergrad-sweeper"}}


def _plugin_hint(overrides) -> str:
    """How to install the plugin a `hydra/launcher=X` or `hydra/sweeper=X` override asks for, if it is one."""
    for line in overrides:
        group, _, option = line.lstrip("+").partition("=")
        if group not in PLUGINS:
            continue
        if option in PLUGINS[group]:
            return f"; {group}={option} needs the package {PLUGINS[group][option]}"
        near = difflib.get_close_matches(option, PLUGINS[group], n=1, cutoff=0.6)
        return f"; did you mean {group}={near[0]}?" if near else ""
    return ""


def _check_launcher(cfg) -> None:
    """The SLURM launcher (submitit) needs SLURM's commands, which only a cluster's machines have; resexp's
    own launcher plugin needs an install that has it (one made before it was added does not)."""
    target = str(cfg.hydra.launcher.get("_target_", ""))
    if target.startswith("hydra_plugins.resexp_launcher."):
        try:
            import hydra_plugins.resexp_launcher.parallel  # noqa: F401
        except ImportError:
            raise UserError("hydra/launcher=parallel is a plugin of resexp that this install lacks; install resexp "
                            "again (pip install -e . in its folder)") from None
    if target.endswith(".SlurmLauncher") and not shutil.which("srun"):
        raise UserError("hydra/launcher=slurm submits each job to SLURM, whose commands (srun) this machine does not have; "
                        "run the sweep on the cluster's login node, or drop hydra/launcher=slurm")


def _with_preset_sweep(overrides, params) -> list[str]:
    """The sweep as Hydra's basic sweeper runs it: an experiment preset's `hydra.sweeper.params` first,
    a command-line override of the same key replacing the preset's values in place."""
    merged = {str(k): f"{k}={v}" for k, v in (params or {}).items()}
    for line in overrides:
        merged[line.partition("=")[0]] = line
    return list(merged.values())


def _differing(jobs) -> set[str]:
    """Keys whose value is not the same in every job."""
    seen = {}
    for job in jobs:
        for line in job:
            key, _, value = line.partition("=")
            seen.setdefault(key.lstrip("+~"), set()).add(value)
    return {k for k, v in seen.items() if len(v) > 1}


def _failure_message(failures: dict, jobs, differ) -> str:
    """First line: how many jobs are invalid; then one line per distinct problem, with the swept values
    its jobs share (`depth=21`) and which jobs they are."""
    bad = sum(len(i) for i in failures.values())
    lines = [f"{bad} of {len(jobs)} jobs of the sweep are invalid; nothing was run:"]
    for message, indices in failures.items():
        shared = set.intersection(*({line for line in jobs[i] if line.partition("=")[0].lstrip("+~") in differ}
                                    for i in indices))
        where = " ".join(line for line in jobs[indices[0]] if line in shared)
        numbers = ", ".join(map(str, indices[:10])) + (", ..." if len(indices) > 10 else "")
        lines.append(f"  {where + ': ' if where else ''}{message} (job{'s' if len(indices) > 1 else ''} {numbers})")
    return "\n".join(lines)


def _static_part(directory: str) -> str:
    """The part of an output directory's pattern before its first interpolation (`runs/` of
    `runs/${now:...}/...`): where every run of that pattern is created."""
    return str(Path(directory.split("${")[0] + "x").parent)


# Images an epoch, for ordering jobs given in epochs whose dataset does not say its size (Fashion-MNIST,
# CIFAR): only the ratio between a sweep's jobs matters, and they mostly share their dataset.
EPOCH_IMAGES = 50_000


def job_cost(cfg) -> float:
    """About how much work a composed job is: the images it trains on times its net's multiply-adds per
    image, counted on the meta device (no weights, no data). The parallel launcher starts the costliest
    jobs first, so the last job to finish is not a deep net started late."""
    from .data import input_shape
    from .models.footprint import footprint
    channels, side, _, classes = input_shape(cfg.dataset)
    fp = footprint(cfg.model.name, cfg.depth, tuple(sorted(model_options(cfg.model).items())),
                   channels, side, classes)
    t = cfg.trainer
    images = t.steps * t.batch_size if t.steps else t.epochs * cfg.dataset.get("train_size", EPOCH_IMAGES)
    return float(images) * fp.multiply_adds


def longest_first(costs: list[float]) -> list[int]:
    """Job indices, the costliest first (ties in sweep order): with k jobs at once, a sweep then ends
    close to its total work / k instead of waiting on a deep net that started last."""
    return sorted(range(len(costs)), key=lambda i: -costs[i])
