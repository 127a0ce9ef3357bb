"""Run directory names: the net's label (models.label), then every overridden key that tells the runs
apart, abbreviated: `3_resnet20-A_act=gelu`, `14-02-11_plain56_act=tanh_lr=0.05`.

Hydra resolves the names (conf/train.yaml, hydra.run.dir and hydra.sweep.subdir) from a job's own
overrides (`hydra.overrides.task`), leaving out the keys in `hydra.job.config.override_dirname.exclude_keys`:
keys that say where or how a run runs (train.yaml) and, in a sweep, every key whose value is the same in
all its jobs (`resexp train` adds those before the sweep starts, see sweep.precheck).
"""
import hashlib
import re
import shlex

# Keys the prefix already shows (the Fig. 6 preset's `net` names model and depth); the options the family's
# label shows are left out too (models.Family.shown).
IN_PREFIX = ("model", "model.name", "depth", "net")
# Short names for long keys; any other key is shortened to its last dotted part (`model.width` -> `width`).
ABBREVIATIONS = {"model.activation": "act", "model.init_alpha": "alpha", "trainer.batch_size": "bs",
                 "optimizer": "opt", "schedule": "sched", "dataset": "data", "experiment": "exp",
                 "dataset.augment.crop_padding": "pad", "dataset.augment.flip": "flip"}
MAX_SUFFIX = 100  # characters; a longer suffix is cut and ends in a hash of the whole, so names stay unique
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")  # anything else (/, spaces, brackets, commas, quotes) becomes -


def run_tag(model, depth) -> str:
    """The net's label (models.label) from a `model` group: resnet20-A, wide_resnet28-10."""
    from .models import label
    model = dict(model)
    return label(str(model.pop("name")), depth, model)


def _shown(model) -> tuple:
    """The `model.*` keys the label of `model`'s family already shows."""
    from .models import FAMILIES
    family = FAMILIES.get(str(dict(model).get("name")))
    return tuple(f"model.{key}" for key in family.shown()) if family else ()


def short_key(key: str) -> str:
    return ABBREVIATIONS.get(key, key.rsplit(".", 1)[-1])


def name_suffix(overrides, exclude=()) -> str:
    """`act=gelu_lr=0.05` from the overrides `model.activation=gelu optimizer.lr=0.05`, in their order."""
    items = []
    for line in overrides:
        key, _, value = str(line).partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra") or key in IN_PREFIX or key in exclude:
            continue
        items.append((key, value))
    shorts = [short_key(k) for k, _ in items]
    parts = [f"{s if shorts.count(s) == 1 else k}={v}" for (k, v), s in zip(items, shorts)]
    suffix = _UNSAFE.sub("-", "_".join(parts)).strip("-")
    if len(suffix) > MAX_SUFFIX:
        suffix = suffix[:MAX_SUFFIX - 9] + "~" + hashlib.sha1(suffix.encode()).hexdigest()[:8]
    return suffix


def run_name(model, depth, overrides=(), exclude=()) -> str:
    """`model`: the composed `model` group (name and options)."""
    suffix = name_suffix(overrides or (), (*(exclude or ()), *_shown(model)))
    return run_tag(model, depth) + (f"_{suffix}" if suffix else "")


def resume_arg(run_dir) -> str:
    """`resume=RUN` as a shell takes it, whatever the path holds (spaces, quotes, any letters): a printed
    hint that pastes into a shell as it is."""
    return shlex.quote(f"resume={run_dir}")
