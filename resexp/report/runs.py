"""Collect run directories and read back what a report needs: config, status, metrics.

Nothing is recomputed: every number comes from a run's config.yaml, status.json and metrics.jsonl.
"""
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import UserError
from ..track.logger import flatten, read_metrics
from ..track.status import CONFIG_FILE, STATUS_FILE, read_status

# Keys that never define a configuration: the seed is averaged over, the rest say where or how a run ran.
NOT_CONFIGURATION = ("seed", "resume", "device")
# Keys that the family and depth already show.
SHOWN = ("model.name", "model.shortcut", "depth")


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
    config = flatten(OmegaConf.to_container(OmegaConf.load(path))) if path.exists() else {}
    status = read_status(run_dir) or {"status": "failed", "error": "no status file: the job ended before recording one"}
    return {"run": run_dir.name, **status, "dir": run_dir, "config": config, "family": family(config),
            "depth": config.get("depth", "?"), "metrics": read_metrics(run_dir)}


def load_runs(paths, extra_dirs=()) -> list[dict]:
    """Runs under every path (and the run directories `extra_dirs`), each once, ordered by series (family
    and other swept keys), depth and directory. `series` names a run's line family in the figures:
    'plain', 'resnet-A, model.activation=tanh'."""
    dirs = sorted({d.resolve(): d for d in [*(d for p in paths for d in find_runs(p)), *extra_dirs]}.values())
    runs = [load_run(d) for d in dirs]
    extra = other_swept_keys(runs)
    for r in runs:
        r["series"] = ", ".join([r["family"], *(f"{k}={r['config'].get(k)}" for k in extra)])
    runs.sort(key=lambda r: (r["series"], r["depth"] if isinstance(r["depth"], int) else 1 << 30, str(r["dir"])))
    return runs


def other_swept_keys(runs: list[dict]) -> list[str]:
    """Config keys, beyond family and depth, whose value differs between runs of one family and depth
    (a key such as the Fig. 6 preset's `net`, which only names family and depth, is not one)."""
    keys = sorted({k for r in runs for k in r["config"]} - set(NOT_CONFIGURATION) - set(SHOWN))
    values = {}  # (key, family, depth) -> the values seen
    for r in runs:
        for k in keys:
            values.setdefault((k, r["family"], repr(r["depth"])), set()).add(repr(r["config"].get(k)))
    varying = {k for (k, *_), seen in values.items() if len(seen) > 1}
    return [k for k in keys if k in varying]


def configurations(runs: list[dict]) -> tuple[list[str], list[list[dict]]]:
    """(other swept keys, groups of runs): runs that differ only in a NOT_CONFIGURATION key (the seed)
    share a group."""
    groups = {}
    for r in runs:
        key = tuple(sorted((k, repr(v)) for k, v in r["config"].items() if k not in NOT_CONFIGURATION))
        groups.setdefault(key, []).append(r)
    return other_swept_keys(runs), list(groups.values())
