"""What the explain commands share: their arguments (train's overrides plus a few flags, or run
directories), one validated config and label per net of a sweep, a trained run's config and weights,
the dataset each needs (loaded once, on the CPU), and a fresh output directory."""
import json
import math
import time
from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from ..args import Parser
from ..config import GROUPS, check_group_option, load_run_config, validate
from ..errors import UserError
from ..files import check_new_files, claim_new_dir, make_dir, write_text
from ..sweep import compose_job, parse, sweep_jobs, values
from ..track.status import CONFIG_FILE

CPU = "cpu"  # the explain commands run on the CPU: seconds for the nets they look at
_IGNORED_FLAGS = ("-m", "--multirun")  # accepted so a `resexp train -m ...` line can be reused as is


def parser(prog: str, description: str) -> Parser:
    p = Parser(prog, description)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="the overrides of `resexp train`; a list (model=plain,resnet) gives one net per value")
    return p


def parse_args(p: Parser, args):
    return p.parse_args([a for a in args if a not in _IGNORED_FLAGS])


def nets(overrides, files: bool = True) -> list[tuple[str, object]]:
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
        validate(cfg, files)  # files=False: the dataset's files are not needed (describe reads only shapes)
        extra = [o.removeprefix("model.") for o in job if o.split("=", 1)[0] in swept]
        result.append((" ".join([net_label(cfg), *extra]), cfg))
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
    if not out:  # claimed now, atomically: two commands started in the same second get two directories
        return claim_new_dir(Path("runs/explain") / f"{command}-{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return check_new_files("--out", out, files)


def open_run(run_dir: Path, command: str):
    """(config, newest checkpoint) of a run directory; one line when it is not a run or has no checkpoint."""
    from ..train.checkpoint import load_newest
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); give one under runs/")
    newest = load_newest(run_dir, CPU)  # a corrupt newer checkpoint is skipped, with a warning line
    if newest is None:
        raise UserError(f"{run_dir} has no checkpoint (checkpoints/step_*.pt): {command} needs a trained run's "
                        "weights; resume or re-run it")
    cfg = load_run_config(run_dir / CONFIG_FILE)
    cfg.device = CPU
    validate(cfg)
    return cfg, newest[0]


def trained_model(cfg, checkpoint: Path, data, device="cpu"):
    """The run's net with the checkpoint's weights, on `device`; the checkpoint is read as data only
    (train/checkpoint.py's weights-only loader), and refused in one line if it holds anything else."""
    from ..models import model_from_config
    from ..train.checkpoint import load_checkpoint, restore
    model = model_from_config(cfg.model, cfg.depth, data.num_classes, data.in_channels).to(device)
    restore(model, load_checkpoint(checkpoint, device)["model"], checkpoint, "model")
    return model


def pick_device(name: str):
    """--device: a torch device this machine has; one line otherwise."""
    import torch
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name} is not a device; give cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not (torch.cuda.is_available()
                                      and (device.index or 0) < torch.cuda.device_count()):
        raise UserError(f"--device {name}: this machine has no such CUDA device; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: the explain commands run on cpu or cuda")
    return device


def net_label(cfg) -> str:
    """The net's one label (models.label): resnet56-A, plain56."""
    from ..models import label, model_options
    return label(cfg.model.name, cfg.depth, model_options(cfg.model))


def labels(results) -> list[str]:
    """Net names, or run directory names where two runs share a net name."""
    nets = [r["net"] for r in results]
    return [n if nets.count(n) == 1 else Path(r["run"]).name for n, r in zip(nets, results)]


def progress():
    """A progress bar on stderr (stdout stays clean for --json), gone when done."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from ..console import err_console
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=True)


def check_images(images: int | None, run_dir: Path, data) -> None:
    """--images: at most the run's training split (None: the command's default, cut to the split)."""
    if images is not None and images > len(data.train_y):
        raise UserError(f"--images {images} is more than {run_dir}'s {len(data.train_y)} training images; "
                        f"choose at most {len(data.train_y)}")


def training_subset(data, images: int | None, default: int, seed: int, device):
    """The run's data with its training split cut to `images` images (None: `default`, or the whole split
    where it is smaller) drawn at random with `seed`, on `device`."""
    import torch
    count = min(default, len(data.train_y)) if images is None else images
    index = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))[:count]
    return replace(data, train_x=data.train_x[index].to(device), train_y=data.train_y[index].to(device),
                   mean=data.mean.to(device), std=data.std.to(device))


def run_parser(command: str, doc: str, files: tuple[str, ...], seed: str, several=True, device=False) -> Parser:
    """The arguments every command on trained runs takes: RUN (or RUN [RUN ...]), --seed, --out, --json,
    and --device where it can run elsewhere than on the CPU."""
    p = Parser(command, doc.splitlines()[0])
    if several:
        p.add_argument("runs", nargs="+", metavar="RUN", help="run directories with a checkpoint")
    else:
        p.add_argument("run", metavar="RUN", help="a run directory with a checkpoint")
    p.add_argument("--seed", type=int, default=0, help=f"seed {seed} (default: 0)")
    if device:
        p.add_argument("--device", default="cpu", help="where to run: cpu, cuda, cuda:N (default: cpu)")
    p.add_argument("--out", metavar="DIR", help=f"where {', '.join(files)} go "
                                                f"(default: runs/explain/{command}-DATE_TIME); never overwritten")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of tables")
    return p


def check_positive(p: Parser, **flags) -> None:
    """One line for the first flag (given as keyword max_k for --max-k) that is set and below 1."""
    for name, value in flags.items():
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} {value} is invalid; it must be a positive integer")


def save(out: Path, results, files: tuple[str, ...], draw) -> str:
    """Create `out`, draw the pictures into it (`draw(out)`), write the results as JSON into the last of
    `files`; returns the JSON text."""
    make_dir(out)
    draw(out)
    text = json.dumps(results, indent=1)
    write_text(out / files[-1], text + "\n")
    return text


def finite(value):
    """`value` for JSON, which has no inf or NaN: each of them, however deep in dicts and lists, is null."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value if not isinstance(value, float) or math.isfinite(value) else None
