"""The real composed config: every option of every group composes, validates and builds."""
import zipfile

import pytest
import subprocess
import sys

from resexp.config import GROUPS, group_options, validate
from resexp.errors import UserError
from resexp.models import build_model
from resexp.train.loop import train
from tests.conftest import small_net


# Options that cannot take TINY (synthetic-data keys, depth=8) and what they need instead; presets
# named cifar* and fashion* (and activations) need the dataset's files, which validate() skips checking
# when download=true. A `model` option takes its family's smallest net (conftest.small_net).
NEEDS = {"cifar10": ["dataset.download=true"], "cifar100": ["dataset.download=true"], "folder": ["dataset.root=."],
         "fashion_mnist": ["dataset.download=true"], "mnist": ["dataset.download=true"],
         "activations": ["dataset.download=true"]}


# Model options that are a family's variant (another default for some of its keys), named by that family.
VARIANT_OF = {"preact_resnet_bottleneck": "preact_resnet"}


def compose_option(compose_cfg, group, option):
    if group == "model":
        return compose_cfg(*small_net(option))
    needs = NEEDS.get(option, ["dataset.download=true"] if option.startswith(("cifar", "fashion")) else None)
    prefix = "+" if group == "experiment" else ""
    if needs is None:
        return compose_cfg(f"{prefix}{group}={option}")
    return compose_cfg(f"{prefix}{group}={option}", *needs, tiny=group == "model")


@pytest.mark.parametrize("group", [g for g in GROUPS if g not in ("experiment", "net")])
def test_every_group_option_composes_and_validates(group, compose_cfg):
    for option in group_options(group):
        cfg = compose_option(compose_cfg, group, option)
        validate(cfg)
        assert cfg[group].name == VARIANT_OF.get(option, option)


def test_every_experiment_preset_composes(compose_cfg):
    for option in group_options("experiment"):
        validate(compose_option(compose_cfg, "experiment", option))


def test_required_keys_exist_under_their_names(compose_cfg):
    cfg = compose_cfg(tiny=False)
    assert cfg.depth == 20 and cfg.seed == 0 and cfg.device == "auto"
    assert cfg.model.shortcut == "A" and cfg.model.activation == "relu" and cfg.model.width == 16
    assert cfg.trainer.batch_size == 128 and cfg.optimizer.lr == 0.1 and cfg.optimizer.momentum == 0.9
    assert cfg.optimizer.weight_decay == 1e-4 and cfg.dataset.name == "synthetic"


def test_validate_rejects_bad_values(compose_cfg):
    with pytest.raises(UserError, match="trainer.log_every=0"):
        validate(compose_cfg("trainer.log_every=0"))
    with pytest.raises(UserError, match="schedule.milestones"):
        validate(compose_cfg("schedule.milestones=[0.5,2]"))


def test_same_seed_same_metrics(compose_cfg, tmp_path):
    results = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        results.append(train(compose_cfg("seed=7"), tmp_path / name))
        results[-1].pop("wall_time")
    assert results[0] == results[1]
    a, b = ((tmp_path / n / "metrics.jsonl").read_text().splitlines() for n in "ab")
    strip = [__import__("json").loads(line) for line in a + b]
    for row in strip:
        row.pop("time")
    assert strip[: len(a)] == strip[len(a):]


def test_wheel_ships_the_configs(tmp_path):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(root)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("resexp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {str(p.relative_to(root)) for p in (root / "conf").rglob("*.yaml")}  # every config file, presets too
    assert {"conf/net/plain20.yaml", "conf/debug/smoke.yaml", "conf/train.yaml"} <= shipped
    assert {f"resexp/{name}" for name in shipped} <= set(names)


def test_every_numeric_key_of_every_group_has_a_range(compose_cfg):
    """A new numeric key needs its line in config.RANGES, so a negative noise or size never trains (model
    keys: their family's options record, test_every_model_key_is_declared_once_in_its_familys_record)."""
    from resexp.config import RANGES
    from resexp.track.logger import flatten
    from omegaconf import OmegaConf
    seen = set()
    for group in ("dataset", "optimizer", "schedule"):
        for option in group_options(group):
            cfg = OmegaConf.to_container(compose_option(compose_cfg, group, option))
            for key, value in flatten(cfg).items():
                if key.split(".")[0] in (group, "trainer", "warmup") and key != "schedule.milestones":
                    values = value if isinstance(value, list) else [value]
                    for i, v in enumerate(values):
                        if isinstance(v, (int, float)) and not isinstance(v, bool):
                            seen.add(key if values is not value else f"{key}.{i}")
    missing = sorted(seen - set(RANGES))
    assert not missing, f"numeric keys without a range in config.RANGES: {missing}"
    assert {"dataset.noise", "trainer.batch_size", "optimizer.betas.1"} <= seen
    assert not any(key.startswith("model.") for key in RANGES)  # declared once, in the records


def test_every_model_key_is_declared_once_in_its_familys_record(compose_cfg):
    """Every key of every `model` option (presets too) is a field of its family's record, with its default,
    its test and what it allows; a value it refuses is one line naming the key."""
    from resexp.models import FAMILIES
    from resexp.models.options import option_fields
    for option in group_options("model"):
        model = compose_option(compose_cfg, "model", option).model
        fields = option_fields(FAMILIES[model.name].options)
        assert set(model) - {"name"} == set(fields), option
        for name, field in fields.items():
            assert {"test", "allowed", "doc"} <= set(field.metadata) and field.metadata["test"](field.default), name


@pytest.mark.parametrize("override,expected", [
    ("dataset.noise=-1", "dataset.noise=-1 is invalid; it must be a number >= 0"),
    ("dataset.val_size=256", "dataset.val_size=256 is invalid; it must be below dataset.train_size=256"),
    ("optimizer.momentum=1.5", "optimizer.momentum=1.5 is invalid; it must be a number in [0, 1)"),
    ("trainer.eval_batch_size=0", "trainer.eval_batch_size=0 is invalid"),
    ("trainer.profile_every=-5", "trainer.profile_every=-5 is invalid; it must be a positive integer"),
    ("dataset.split_seed=-1", "dataset.split_seed=-1 is invalid; it must be an integer >= 0"),
])
def test_out_of_range_values_are_refused(override, expected, compose_cfg):
    with pytest.raises(UserError) as caught:
        validate(compose_cfg(override))
    assert str(caught.value) == expected or str(caught.value).startswith(expected)
