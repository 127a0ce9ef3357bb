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


@pytest.mark.parametrize("group", [g for g in GROUPS if g not in ("experiment", "net", "logger")])  # _global_: no GROUP.name
def test_every_group_option_composes_and_validates(group, compose_cfg, tmp_path, monkeypatch):
    from tests.fakes import fake_image_folder
    fake_image_folder(tmp_path, per_class=5)  # dataset.root=. for dataset=folder
    monkeypatch.chdir(tmp_path)
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


@pytest.mark.parametrize("overrides,expected", [
    (["schedule.name=cosin"], "schedule.name=cosin is not a known schedule; did you mean cosine?"),
    (["optimizer.name=adamw"], "optimizer.name=adamw is not a known optimizer; did you mean adam?"),
    (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas=[0.9] is invalid; it must be two numbers"),
    (["dataset.image_size=100000"], "the run needs about 656,640 GB"),
    (["model.width=100000"], "34,560.1 GB for the net's 2,880,009,700,010 weights"),
])
def test_every_key_resexp_reads_is_checked_before_any_work(tmp_path, monkeypatch, capsys, overrides, expected):
    from tests.conftest import TINY, refused
    monkeypatch.chdir(tmp_path)
    message = refused(capsys, "train", *TINY, *overrides)
    assert expected in message
    if "GB" in expected:  # the sizes, and what to lower
        assert "lower model.width, dataset.image_size or trainer.batch_size" in message
    from resexp.cli import main
    assert main(["train", "-m", *TINY, "seed=0,1", *overrides]) == 2  # every job of a sweep, before any starts
    err = capsys.readouterr().err
    assert err.startswith("error: 2 of 2 jobs of the sweep are invalid") and expected in err, err
    assert not (tmp_path / "runs").exists()


def test_the_memory_check_measures_every_family(compose_cfg):
    """The net is measured on torch's meta device: every family runs there, and the count is the real one."""
    from resexp.config import group_options
    from resexp.data import input_shape
    from resexp.models import FAMILIES, count_parameters, model_from_config, model_options
    from resexp.models.footprint import footprint
    for name, family in FAMILIES.items():
        cfg = compose_cfg(f"model={name}", f"depth={family.depth_for({})}")  # at the depth its paper uses most
        channels, side, _, classes = input_shape(cfg.dataset)
        fp = footprint(name, cfg.depth, tuple(sorted(model_options(cfg.model).items())), channels, side, classes)
        real = model_from_config(cfg.model, cfg.depth, classes, channels)
        assert fp.parameters == count_parameters(real), name
        assert fp.activations > channels * side * side, name
