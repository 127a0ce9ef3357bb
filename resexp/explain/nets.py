"""What the explain commands share: their arguments (train's overrides plus a few flags), one validated
config and label per net of a sweep, the dataset each needs (loaded once, on the CPU), and a fresh
output directory."""
import argparse
import time
from pathlib import Path

from omegaconf import OmegaConf

from ..config import GROUPS, check_group_option, validate
from ..errors import UserError
from ..overrides import compose_job, parse, sweep_jobs, values

CPU = "cpu"  # the explain commands run on the CPU: seconds for the nets they look at
_IGNORED_FLAGS = ("-m", "--multirun")  # accepted so a `resexp train -m ...` line can be reused as is


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one UserError line (exit 2) instead of usage text and SystemExit."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def parser(prog: str, description: str) -> Parser:
    p = Parser(prog=f"resexp {prog}", description=description)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="the overrides of `resexp train`; a list (model=plain,resnet) gives one net per value")
    return p


def parse_args(p: Parser, args):
    return p.parse_args([a for a in args if a not in _IGNORED_FLAGS])


def nets(overrides) -> list[tuple[str, object]]:
    """(label, validated config) per net: the cross product of the overrides' lists, as `resexp train -m`
    runs it. All are validated before any work. The label is model-depth plus every swept key's value."""
    overrides = ["+" + o if o.startswith("experiment=") else o for o in overrides]
    parsed = parse(overrides)
    for o in parsed:
        if o.get_key_element().lstrip("+~") in GROUPS:
            for value in values(o):
                check_group_option(o.get_key_element().lstrip("+~"), value)
    swept = {o.get_key_element() for o in parsed if o.is_sweep_override()} - {"model", "depth"}
    result = []
    for job in sweep_jobs(overrides):
        cfg = compose_job(job)
        validate(cfg)
        extra = [o.removeprefix("model.") for o in job if o.split("=", 1)[0] in swept]
        result.append((" ".join([f"{cfg.model.name}-{cfg.depth}", *extra]), cfg))
    return result


class Datasets:
    """Each distinct dataset config loaded once, on the CPU."""

    def __init__(self):
        self._loaded = {}

    def __call__(self, dataset_cfg):
        from ..data import load_dataset
        key = OmegaConf.to_yaml(dataset_cfg)
        if key not in self._loaded:
            self._loaded[key] = load_dataset(dataset_cfg, CPU)
        return self._loaded[key]


def output_dir(out: str | None, command: str, files: tuple[str, ...]) -> Path:
    """`out`, or runs/explain/<command>-<date_time>; refused when it already holds one of `files`, so
    nothing is overwritten. Checked before any work; created when the results are written."""
    path = Path(out) if out else Path("runs/explain") / f"{command}-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; give a directory")
    taken = [name for name in files if (path / name).exists()]
    if taken:
        raise UserError(f"--out {path} already holds {', '.join(taken)}; choose another directory")
    return path
