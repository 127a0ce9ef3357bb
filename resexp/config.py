"""Checks on the composed config and on command-line overrides, each failing as one clear line."""
import difflib
import functools
import os
from importlib import resources
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import names
from .errors import UserError
from .data import DATASETS
from .track.status import CONFIG_FILE
from .tree import flatten
from .world import cores, world_size
from .models import FAMILIES, check_model_args, default_depth, defaults, model_options
from .models.options import integer_rule, number_rule

GROUPS = ("model", "dataset", "optimizer", "schedule", "experiment", "net", "logger")
DEVICES = ("auto", "cpu", "cuda")


def first_dir(*paths: str) -> str:
    """The first of `paths` that is an existing directory, else the last: a dataset.root default that
    prefers a system-wide copy (a Debian dataset package) over a folder of your own."""
    return next((p for p in paths if Path(p).is_dir()), paths[-1])


def family_depth(model):
    """conf/train.yaml's `depth`: the default depth of the `model` group's family with its options (None
    for an unknown family, which validate() names)."""
    model = dict(model)
    name = model.pop("name", None)
    return default_depth(name, model) if name in FAMILIES else None


def side_by_side(jobs_per_gpu) -> int:
    """How many sweep jobs `hydra/launcher=parallel` runs at once: jobs_per_gpu on each GPU here, else one
    per CPU core (each with one thread: train/job.py)."""
    import torch
    gpus = torch.cuda.device_count()
    return gpus * max(1, int(jobs_per_gpu)) if gpus else cores()


def register() -> None:
    """What Hydra needs from resexp before it composes anything (called by resexp.conf, the config package
    Hydra loads): the resolvers of run names and presets, and one `model` group option per model family,
    made from its options record (conf/model/*.yaml hold presets only); and resexp's launcher plugin, which
    Hydra's scan of `hydra_plugins` finds in a wheel but not through an editable install's import hook."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    try:
        from hydra_plugins.resexp_launcher.parallel import ParallelLauncher
        Plugins.instance().register(ParallelLauncher)
    except ImportError:  # an install older than the plugin: sweep.check_launcher names the fix if it is asked for
        pass

    resolvers = {"first_dir": first_dir, "run_tag": names.run_tag, "run_name": names.run_name,
                 "default_depth": family_depth, "side_by_side": side_by_side}
    for name, function in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
    store = ConfigStore.instance()
    for name in FAMILIES:
        store.store(group="model", name=name, node={"name": name, **defaults(name)})


def resume_config(run_dir) -> Path:
    """The saved config of the run that `resume=run_dir` continues; one line when there is none."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"resume={run_dir}: no run there (no {CONFIG_FILE}); give a run directory under runs/")
    return path


def read_yaml(path):
    """A config file resexp saved (config.yaml), as OmegaConf; one line naming it when it does not parse
    (cut short, edited by hand) or holds no mapping."""
    try:
        cfg = OmegaConf.load(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, OmegaConfBaseException) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} cannot be read ({reason}); restore it, or train a new run") from None
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{path} holds no config (a YAML mapping); restore it, or train a new run")
    return cfg


def load_run_config(path):
    """A run directory's saved config.yaml, as this version reads it: model keys the run's family does not
    have are dropped (runs saved before the families' option records carried every family's keys at
    their defaults), so older runs still resume, and still open in the report and explain commands."""
    cfg = read_yaml(path)
    model = cfg.get("model")
    if model is not None and model.get("name") in FAMILIES:
        own = defaults(model.name)
        for key in [k for k in model if k != "name" and k not in own]:
            del model[key]
    return cfg


@functools.lru_cache(maxsize=1)
def hparam_columns() -> tuple[str, ...]:
    """Every key a run can be told apart by: train.yaml's own keys, every option of every group, every
    family's options and the preset groups (experiment, net, debug), less the keys that say where or how a run runs (the run
    names' exclude_keys). TensorBoard's HPARAMS shows the columns of one run's declaration, whichever it
    reads first, so every run declares them all, and every run's keys appear under any --logdir."""
    conf = resources.files("resexp.conf")
    train = OmegaConf.to_container(OmegaConf.load(conf / "train.yaml"))
    exclude = set(train["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"])
    tree = {k: v for k, v in train.items() if k not in ("defaults", "hydra")}
    for group in ("dataset", "optimizer", "schedule"):
        for option in group_options(group):
            node = OmegaConf.to_container(OmegaConf.load(conf / group / f"{option}.yaml"))
            node.pop("defaults", None)
            tree[group] = {**tree.get(group, {}), **node}
    presets = [p.name for p in conf.iterdir() if p.is_dir() and p.name not in (*tree, "model", "hydra", "__pycache__")]
    keys = {*flatten(tree), "model.name", *presets,  # a list is one key; `+experiment=X` is the column experiment
            *(f"model.{key}" for family in FAMILIES for key in defaults(family))}
    where = ("dataset.url", "dataset.md5.")  # where a dataset's files come from, not what the run is
    return tuple(sorted(k for k in keys if k not in exclude and not k.startswith(where)))


def group_options(group: str) -> list[str]:
    """The option names of a config group: the shipped YAML files, and for `model` every family."""
    folder = resources.files("resexp.conf") / group
    return sorted({p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")}
                  | (set(FAMILIES) if group == "model" else set()))


def check_group_option(group: str, option: str, key: str | None = None) -> None:
    """`option` one of the group's (given on the command line as `key`, by default the group itself)."""
    allowed = group_options(group)
    if option not in allowed:
        near = difflib.get_close_matches(str(option), allowed, n=1, cutoff=0.75)
        hint = f"did you mean {near[0]}? " if near else ""
        raise UserError(f"{key or group}={option} is not a known {group}; {hint}choose one of: {', '.join(allowed)}")


def validate(cfg, files: bool = True) -> None:
    """Check every value a run depends on, before any work; raise UserError naming key, value, allowed."""
    if cfg.device not in DEVICES:
        raise UserError(f"device={cfg.device!r} is invalid; choose one of: {', '.join(DEVICES)}")
    if cfg.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise UserError("device=cuda but no CUDA GPU is visible; use device=auto or device=cpu")
    _check_speed(cfg)
    _check_world(cfg)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise UserError(f"seed={cfg.seed!r} is invalid; it must be an integer")
    m = cfg.model
    try:
        check_model_args(m.name, cfg.depth, **model_options(m))  # the family's options record
    except ValueError as e:
        raise UserError(str(e)) from None
    for group in ("dataset", "optimizer", "schedule"):  # a group's `name` picks the code that runs it
        check_group_option(group, cfg[group].name, key=f"{group}.name")
    check_ranges(cfg)  # every other numeric key, once
    if cfg.schedule.name == "multistep":
        _check_milestones(cfg.schedule)
    if "betas" in cfg.optimizer and len(cfg.optimizer.betas) != 2:
        raise UserError(f"optimizer.betas={OmegaConf.to_container(cfg.optimizer.betas)} is invalid; it must be "
                        "two numbers in [0, 1), e.g. [0.9,0.999]")
    d = cfg.dataset
    _check_dataset(d)
    DATASETS[d.name].check(d, files)  # its own rules and, with `files`, its files
    if files or d.name != "folder":  # a folder's classes are counted from its files
        _check_memory(cfg)


SPEED_KEYS = {"trainer.precision": ("auto", "fp32", "bf16"), "trainer.channels_last": ("auto", True, False, "on", "off"),
              "trainer.cuda_graph": ("auto", True, False, "on", "off", "emulate"), "trainer.compile": (True, False),
              "deterministic": (True, False)}


def _check_speed(cfg) -> None:
    """The precision, layout, graph, compile and determinism switches (YAML's on/off read as true/false)."""
    for key, allowed in SPEED_KEYS.items():
        value = OmegaConf.select(cfg, key)
        if not any(value is a or (isinstance(a, str) and value == a) for a in allowed):
            names = ", ".join(str(a).lower() for a in allowed)
            raise UserError(f"{key}={value!r} is invalid; choose one of: {names}")
    if cfg.trainer.channels_last in (True, "on") and cfg.device == "cpu" and cfg.model.get("width", 16) < 8:
        raise UserError(f"trainer.channels_last=true with model.width={cfg.model.width} hangs torch's CPU kernels "
                        "(strided 1x1 convolutions of < 8 channels); use model.width >= 8 or channels_last=false")
    if cfg.trainer.cuda_graph == "emulate":
        if cfg.device != "cpu":
            raise UserError(f"trainer.cuda_graph=emulate replays the step as a CUDA graph would, on the CPU only; "
                            f"add device=cpu (device={cfg.device} here)")
        if cfg.trainer.compile:
            raise UserError("trainer.cuda_graph=emulate records torch's own operations, which a compiled model "
                            "hides; use trainer.compile=false with it")
    if cfg.trainer.cuda_graph in (True, "on"):
        import torch
        if cfg.device == "cpu" or not torch.cuda.is_available():
            raise UserError("trainer.cuda_graph=true needs a CUDA GPU and none is in use here; "
                            "use trainer.cuda_graph=auto or false")


# cuBLAS' condition for reproducible results (CUDA's docs, "Results reproducibility"). cuBLAS reads it once,
# when it first starts on a GPU: in a sweep that mixes deterministic values it must be set before job 0.
CUBLAS_WORKSPACE = ":4096:8"


def prepare_determinism(cfgs) -> None:
    """Set CUBLAS_WORKSPACE_CONFIG for the whole process when any job of it runs deterministic=true."""
    if any(cfg.deterministic for cfg in cfgs):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def _check_world(cfg) -> None:
    """Under torchrun (WORLD_SIZE processes) trainer.batch_size is the global batch, split evenly."""
    world = world_size()
    if isinstance(cfg.trainer.batch_size, int) and cfg.trainer.batch_size % world:
        raise UserError(f"trainer.batch_size={cfg.trainer.batch_size} does not split over {world} processes "
                        f"(WORLD_SIZE); choose a multiple of {world}")


MILESTONE_UNITS = {"fraction": "a fraction of training between 0 and 1", "step": "a positive iteration number",
                   "epoch": "a positive number of epochs"}


def _check_milestones(schedule) -> None:
    if schedule.unit not in MILESTONE_UNITS:
        raise UserError(f"schedule.unit={schedule.unit!r} is invalid; choose one of: {', '.join(MILESTONE_UNITS)}")
    ok = {"fraction": lambda x: 0 < x < 1, "step": lambda x: isinstance(x, int) and x > 0,
          "epoch": lambda x: x > 0}[schedule.unit]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and ok(x) for x in schedule.milestones):
        raise UserError(f"schedule.milestones={OmegaConf.to_container(schedule.milestones)} is invalid with "
                        f"schedule.unit={schedule.unit}; each must be {MILESTONE_UNITS[schedule.unit]}")
    if list(schedule.milestones) != sorted(schedule.milestones):
        raise UserError(f"schedule.milestones={OmegaConf.to_container(schedule.milestones)} is invalid; "
                        f"list them in increasing order: {sorted(schedule.milestones)}")


NORMALIZATIONS = ("per_channel", "per_pixel")


def _check_dataset(d) -> None:
    """Keys shared by every dataset."""
    if not isinstance(d.val_size, int) or d.val_size < 0:
        raise UserError(f"dataset.val_size={d.val_size!r} is invalid; it must be an integer >= 0")
    if d.normalize not in NORMALIZATIONS:
        raise UserError(f"dataset.normalize={d.normalize!r} is invalid; choose one of: {', '.join(NORMALIZATIONS)}")




# Every numeric key of the dataset, trainer, optimizer, schedule and warm-up groups, with its allowed range
# (a key absent from the chosen group option is skipped; NULLABLE keys may be null). The model's keys are
# checked by their family's options record (resexp/models/options.py).
RANGES = {
    "dataset.seed": integer_rule(0), "dataset.split_seed": integer_rule(0), "dataset.val_size": integer_rule(0),
    "dataset.image_size": integer_rule(1), "dataset.num_classes": integer_rule(2),
    "dataset.train_size": integer_rule(1), "dataset.test_size": integer_rule(1),
    "dataset.noise": number_rule(0), "dataset.test_fraction": number_rule(0, 1, True, True),
    "dataset.augment.crop_padding": integer_rule(0),
    "trainer.epochs": integer_rule(1), "trainer.steps": integer_rule(1), "trainer.batch_size": integer_rule(1),
    "trainer.log_every": integer_rule(1), "trainer.profile_every": integer_rule(1),
    "trainer.eval_every": integer_rule(1),
    "trainer.eval_batch_size": integer_rule(1), "trainer.checkpoint_every": integer_rule(1),
    "trainer.keep_checkpoints": integer_rule(1), "trainer.divergence_loss": number_rule(0, low_open=True),
    "optimizer.lr": number_rule(0, low_open=True), "optimizer.momentum": number_rule(0, 1, high_open=True),
    "optimizer.weight_decay": number_rule(0), "optimizer.betas.0": number_rule(0, 1, high_open=True),
    "optimizer.betas.1": number_rule(0, 1, high_open=True),
    "schedule.gamma": number_rule(0, 1, low_open=True), "schedule.min_factor": number_rule(0, 1),
    "warmup.lr": number_rule(0, low_open=True), "warmup.until_error": number_rule(0, 100, low_open=True),
    "warmup.window": integer_rule(1), "warmup.min_depth": integer_rule(0), "jobs_per_gpu": integer_rule(1),
}
NULLABLE = ("dataset.num_classes", "trainer.steps", "trainer.eval_every", "trainer.profile_every", "warmup.lr")


def check_ranges(cfg) -> None:
    """Each RANGES key in range, and a validation split that leaves training images."""
    values = flatten(OmegaConf.to_container(cfg, resolve=True), lists=True)  # one pass: cheaper than a select a key
    for key, (ok, allowed) in RANGES.items():
        if key not in values or (values[key] is None and key in NULLABLE) or ok(values[key]):
            continue
        raise UserError(f"{key}={values[key]!r} is invalid; it must be {allowed}")
    d = cfg.dataset
    if "train_size" in d and d.val_size >= d.train_size:
        raise UserError(f"dataset.val_size={d.val_size} is invalid; it must be below dataset.train_size={d.train_size}")


# Optimizer numbers kept per weight (momentum; Adam's two moments).
OPTIMIZER_STATE = {"sgd": 1, "adam": 2}
GB = 1e9


def _check_memory(cfg) -> None:
    """The net, a batch's activations and the images must fit in the memory of the device that trains them:
    one line with the sizes, instead of the allocator's message after the data is loaded."""
    from .data import input_shape
    from .models.footprint import footprint, training_bytes
    d = cfg.dataset
    channels, side, _, classes = input_shape(d)
    options = tuple(sorted(model_options(cfg.model).items()))
    fp = footprint(cfg.model.name, cfg.depth, options, channels, side, classes)
    weights, activations = training_bytes(fp, cfg.trainer.batch_size, OPTIMIZER_STATE[cfg.optimizer.name])
    images = (d.train_size + d.test_size) * channels * side * side if "train_size" in d else 0  # uint8
    device, memory = _device_memory(cfg.device)
    if weights + activations + images > memory:
        raise UserError(f"the run needs about {(weights + activations + images) / GB:,.0f} GB ({weights / GB:,.1f} "
                        f"GB for the net's {fp.parameters:,} weights with gradients and optimizer state, "
                        f"{activations / GB:,.1f} GB for a batch of {cfg.trainer.batch_size}, {images / GB:,.1f} GB "
                        f"of images) and the {device} has {memory / GB:,.0f} GB; lower model.width, "
                        "dataset.image_size or trainer.batch_size")


def _device_memory(device: str) -> tuple[str, int]:
    """(what, bytes): the GPU's memory where the run would train on one, else the machine's."""
    import torch
    if device != "cpu" and torch.cuda.is_available():
        return "GPU", torch.cuda.get_device_properties(0).total_memory
    return "machine", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


