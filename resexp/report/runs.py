"""Collect run directories and read back what a report needs: config, status, metrics.

Nothing is recomputed: every number comes from a run's config.yaml, status.json and metrics.jsonl.
"""
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from ..config import read_yaml
from ..errors import UserError
from ..names import short_key
from ..track.logger import flatten, read_metrics
from ..track.status import CONFIG_FILE, STATUS_FILE, read_status

# Keys that never define a configuration: the seed is averaged over, the rest say where or how a run ran.
NOT_CONFIGURATION = ("seed", "resume", "device", "jobs_per_gpu")
# Housekeeping: how often a run logs, evaluates and saves, how fast it runs, where its data comes from. Runs
# that differ only in these are the same configuration (a key or a prefix of keys).
HOUSEKEEPING = ("trainer.log_every", "trainer.profile_every", "trainer.eval_every", "trainer.eval_batch_size",
                "trainer.checkpoint_every", "trainer.keep_checkpoints", "trainer.divergence_loss",
                "trainer.precision", "trainer.channels_last", "trainer.cuda_graph", "trainer.compile",
                "deterministic", "dataset.root", "dataset.download", "dataset.url", "dataset.md5")


def is_setting(key: str) -> bool:
    """Whether a config key can tell two configurations apart."""
    return key not in NOT_CONFIGURATION and not any(key == h or key.startswith(h + ".") for h in HOUSEKEEPING)
# Keys that the family and depth already show (and the options each family's label shows, label_keys).
SHOWN = ("model.name", "depth")


def find_runs(path) -> list[Path]:
    """PATH itself when it is a run directory, else every run directory beneath it (sweeps, runs/)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such directory; give a run directory, a sweep directory or runs/")
    if (path / STATUS_FILE).exists():
        return [path]
    runs = sorted(p.parent for p in path.rglob(STATUS_FILE) if "report" not in p.relative_to(path).parts[:-1])
    if not runs:
        raise UserError(f"{path}: no runs there (no {STATUS_FILE} beneath it)")
    return runs


def family(config: dict) -> str:
    """The model family's label (models.label without a depth): 'plain', 'resnet-A', 'densenet'."""
    from ..models import label
    options = {key[len("model."):]: value for key, value in config.items() if key.startswith("model.")}
    return label(str(config.get("model.name", "?")), "", options)


def load_run(run_dir: Path) -> dict:
    """One run: its name, status file (status and final numbers), flat config, family, depth and metrics
    rows. A directory without a status file is a run that ended before recording one: failed."""
    path = run_dir / CONFIG_FILE
    config = flatten(OmegaConf.to_container(read_yaml(path))) if path.exists() else {}
    status = read_status(run_dir) or {"status": "failed", "error": "no status file: the job ended before recording one"}
    return {"run": run_dir.name, **status, "dir": run_dir, "config": config, "family": family(config),
            "depth": config.get("depth", "?"), "metrics": read_metrics(run_dir)}


def load_runs(paths, extra_dirs=()) -> list[dict]:
    """Runs under every path (and the run directories `extra_dirs`), each once, ordered by series (family
    and other swept keys), depth and directory. `series` names a run's line family in the figures:
    'plain', 'resnet-A act=tanh' (a swept key at its most common value is left out)."""
    dirs = sorted({d.resolve(): d for d in [*(d for p in paths for d in find_runs(p)), *extra_dirs]}.values())
    runs = [load_run(d) for d in dirs]
    extra = other_swept_keys(runs)
    common = {k: Counter(repr(r["config"].get(k)) for r in runs).most_common(1)[0][0] for k in extra}
    for r in runs:  # the family, then each swept key not at the family's default (or the most common value)
        usual = {k: _family_default(r["config"], k, common[k]) for k in extra}
        r["series"] = " ".join([r["family"], *(f"{short_key(k)}={r['config'].get(k)}" for k in extra
                                               if repr(r["config"].get(k)) != usual[k])])
    runs.sort(key=lambda r: (r["series"], r["depth"] if isinstance(r["depth"], int) else 1 << 30, str(r["dir"])))
    return runs


def _family_default(config: dict, key: str, otherwise: str) -> str:
    """repr of the default of `key` when it is an option of the run's family (model.X, as its record
    declares it), else `otherwise`: a series hides what the family does by default, not the majority."""
    from ..models import FAMILIES, defaults
    name, option = config.get("model.name"), key.removeprefix("model.")
    own = defaults(name) if name in FAMILIES and key.startswith("model.") else {}
    if name in FAMILIES and key.startswith("model.") and option not in own:
        return repr(config.get(key))  # not an option of its family: nothing to name
    return repr(own[option]) if option in own else otherwise


def label_keys(runs: list[dict]) -> set[str]:
    """The model options the runs' family labels show (model.shortcut, model.widen, ...)."""
    from ..models import FAMILIES
    return {f"model.{key}" for r in runs if r["config"].get("model.name") in FAMILIES
            for key in FAMILIES[r["config"]["model.name"]].shown()}


def other_swept_keys(runs: list[dict]) -> list[str]:
    """Config keys, beyond family and depth, whose value differs between runs of one family and depth
    (a key such as the Fig. 6 preset's `net`, which only names family and depth, is not one)."""
    keys = sorted({k for r in runs for k in r["config"] if is_setting(k)} - set(SHOWN) - label_keys(runs))
    values = {}  # (key, family, depth) -> the values seen
    for r in runs:
        for k in keys:
            values.setdefault((k, r["family"], repr(r["depth"])), set()).add(repr(r["config"].get(k)))
    varying = {k for (k, *_), seen in values.items() if len(seen) > 1}
    return [k for k in keys if k in varying and not _follows_group_choice(k, varying, runs)]


def _follows_group_choice(key: str, varying: set, runs: list[dict]) -> bool:
    """A group's key that only differs because the group's choice does (`dataset.num_classes` between
    cifar10 and cifar100 runs): `dataset.name` says it already."""
    group = key.rsplit(".", 1)[0]
    choice = f"{group}.name"
    if key == choice or choice not in varying:
        return False
    seen = {}
    for r in runs:
        seen.setdefault(repr(r["config"].get(choice)), set()).add(repr(r["config"].get(key)))
    return all(len(v) == 1 for v in seen.values())


def configurations(runs: list[dict]) -> tuple[list[str], list[list[dict]]]:
    """(other swept keys, groups of runs): runs that differ only in a key that is no setting (the seed,
    housekeeping) share a group."""
    groups = {}
    for r in runs:
        key = tuple(sorted((k, repr(v)) for k, v in r["config"].items() if is_setting(k)))
        groups.setdefault(key, []).append(r)
    return other_swept_keys(runs), list(groups.values())
