"""The real composed config: every option of every group composes, validates and builds."""
import zipfile

import pytest
import subprocess
import sys

from resexp.config import GROUPS, group_options, validate
from resexp.errors import UserError
from resexp.models import build_model
from resexp.train.loop import train


# Options that cannot take TINY (synthetic-data keys, depth=8) and what they need instead; presets
# named cifar* and fashion* (and activations) need the dataset's files, which validate() skips checking
# when download=true.
NEEDS = {"imagenet_plain": ["depth=18"], "imagenet_resnet": ["depth=18"], "resnet_bottleneck": ["depth=11"],
         "cifar10": ["dataset.download=true"], "cifar100": ["dataset.download=true"], "folder": ["dataset.root=."],
         "fashion_mnist": ["dataset.download=true"], "mnist": ["dataset.download=true"],
         "activations": ["dataset.download=true"]}


def compose_option(compose_cfg, group, option):
    needs = NEEDS.get(option, ["dataset.download=true"] if option.startswith(("cifar", "fashion")) else None)
    prefix = "+" if group == "experiment" else ""
    if needs is None:
        return compose_cfg(f"{prefix}{group}={option}")
    return compose_cfg(f"{prefix}{group}={option}", *needs, tiny=group == "model")


@pytest.mark.parametrize("group", [g for g in GROUPS if g != "experiment"])
def test_every_group_option_composes_and_validates(group, compose_cfg):
    for option in group_options(group):
        cfg = compose_option(compose_cfg, group, option)
        validate(cfg)
        assert cfg[group].name == option


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
    for group in GROUPS:
        for option in group_options(group):
            assert f"resexp/conf/{group}/{option}.yaml" in names
    assert "resexp/conf/train.yaml" in names
