"""Reference errors of the paper variants (He et al. 2016, Tables 1, 2, 4), as a run records them."""
from functools import cache

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from rich.console import Console

from resexp.paper import FAIL, reference
from resexp.report.tables import rich_table


@cache
def model_group(model: str) -> dict:
    """The composed `model` group of conf/model/<model>.yaml (composed once per model: tests stay fast)."""
    with initialize_config_module("resexp.conf", version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=[f"model={model}"]).model)


def ref(*overrides, dataset="cifar10"):
    """The reference a run with these overrides (model=, depth=, model.key=value) records."""
    options = dict(o.split("=") for o in overrides)
    model, depth = options.pop("model", "resnet"), int(options.pop("depth"))
    group = model_group(model)
    for key, value in options.items():
        key = key.removeprefix("model.")
        assert key in group, key  # a real key of the group
        group = {**group, key: value if isinstance(group[key], str) else float(value)}
    return reference(dataset, model, depth, group["shortcut"], group).get("paper_test_error")


@pytest.mark.parametrize("overrides,error", [
    (["depth=110"], 6.43),  # the plain default: He et al. 2015, Table 6
    (["depth=110", "model.shortcut_kind=scaling"], FAIL),  # scale 0.5 (the config's default)
    (["depth=110", "model.shortcut_kind=scaling", "model.shortcut_scale=0"], FAIL),
    (["depth=110", "model.shortcut_kind=exclusive_gating", "model.gate_bias=-3"], FAIL),
    (["depth=110", "model.shortcut_kind=exclusive_gating"], 8.70),  # gate bias -6
    (["depth=110", "model.shortcut_kind=exclusive_gating", "model.gate_bias=-7"], 9.81),
    (["depth=110", "model.shortcut_kind=shortcut_gating", "model.gate_bias=0"], 12.86),
    (["depth=110", "model.shortcut_kind=shortcut_gating"], 6.91),
    (["depth=110", "model.shortcut_kind=conv1x1"], 12.22),
    (["depth=110", "model.shortcut_kind=dropout"], FAIL),
    (["depth=110", "model.block_order=full_preact"], 6.37),
    (["depth=110", "model.block_order=bn_after_add"], 8.17),
    (["model=resnet_bottleneck", "depth=164", "model.block_order=relu_preact"], 5.91),
    (["model=preact_resnet", "depth=164", "model.block=bottleneck"], 5.46),
    (["model=preact_resnet", "depth=110"], 6.37),
    # no reference: a depth the table lacks, two variants at once, a gate bias the table lacks
    (["depth=56", "model.shortcut_kind=conv1x1"], None),
    (["depth=110", "model.shortcut_kind=conv1x1", "model.block_order=full_preact"], None),
    (["depth=110", "model.shortcut_kind=shortcut_gating", "model.gate_bias=-2"], None),
])
def test_variants_find_the_papers_error(overrides, error):
    assert ref(*overrides) == error


def test_preact_1001_on_cifar100():
    assert ref("model=preact_resnet", "depth=1001", "model.block=bottleneck", dataset="cifar100") == 22.71


def test_summary_prints_fail_beside_a_run():
    def run(name, kind, error, paper):
        config = {"model.name": "resnet", "model.shortcut": "A", "depth": 110, "dataset.name": "cifar10",
                  "model.shortcut_kind": kind}
        return {"run": name, "status": "finished", "config": config, "family": "resnet-A", "depth": 110,
                "final_test_error": error, "paper_test_error": paper, "paper_dataset": "cifar10", "metrics": []}
    rows = [run("0_resnet110-A_sc=dropout", "dropout", 31.0, FAIL),
            run("1_resnet110-A_sc=shortcut_gating", "shortcut_gating", 7.0, 6.91)]
    console = Console(width=200, record=True)
    console.print(rich_table(rows, "sweep", console))
    text = console.export_text()
    assert any("dropout" in line and "fail" in line for line in text.splitlines()) and "6.91" in text
