"""The papers' numbers as a run records them: each with its table, statistic and dataset (paper.py)."""
import re
from functools import cache
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from rich.console import Console

from resexp import build_model, count_parameters
from resexp.config import validate
from resexp.models.orders import ResidualUnit
from resexp.paper import FAIL, PUBLISHED, reference
from resexp.report.tables import reference_lines, rich_table
from resexp.train.loop import train
from tests.fakes import fake_cifar

# README and the docs pages, where the papers' numbers are quoted (docs/papers.md holds most of them).
PAGES = [Path(__file__).parent.parent / "README.md", *sorted((Path(__file__).parent.parent / "docs").glob("*.md"))]


@cache
def model_group(model: str) -> dict:
    """The composed `model` group of conf/model/<model>.yaml (composed once per model: tests stay fast)."""
    with initialize_config_module("resexp.conf", version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=[f"model={model}"]).model)


def record(*overrides, dataset="cifar10") -> dict:
    """The status.json fields a run with these overrides (model=, depth=, model.key=value) records."""
    options = dict(o.split("=") for o in overrides)
    model, depth = options.pop("model", "resnet"), int(options.pop("depth"))
    group = model_group(model)
    for key, value in options.items():
        key = key.removeprefix("model.")
        assert key in group, key  # a real key of the group
        group = {**group, key: value if isinstance(group[key], str) else type(group[key])(float(value))}
    return reference(dataset, group["name"], depth, group)


def ref(*overrides, dataset="cifar10"):
    return record(*overrides, dataset=dataset).get("paper_test_error")


@pytest.mark.parametrize("overrides,error", [
    (["depth=110", "model.shortcut_kind=scaling"], FAIL),  # 0.5 on the shortcut (the config's default), F 1
    (["depth=110", "model.shortcut_kind=scaling", "model.shortcut_scale=0"], FAIL),
    (["depth=110", "model.shortcut_kind=scaling", "model.residual_scale=0.5"], 12.35),  # frozen gating
    (["depth=110", "model.residual_scale=0.5"], None),  # F scaled alone: no row
    (["depth=110", "model.shortcut_kind=exclusive_gating", "model.gate_bias=-3"], FAIL),
    (["depth=110", "model.shortcut_kind=exclusive_gating"], 8.70),  # gate bias -6
    (["depth=110", "model.shortcut_kind=exclusive_gating", "model.gate_bias=-7"], 9.81),
    (["depth=110", "model.shortcut_kind=shortcut_gating", "model.gate_bias=0"], 12.86),
    (["depth=110", "model.shortcut_kind=shortcut_gating"], 6.91),
    (["depth=110", "model.shortcut_kind=conv1x1"], 12.22),
    (["depth=110", "model.shortcut_kind=dropout"], FAIL),
    (["depth=110", "model.block_order=full_preact"], 6.37),
    (["depth=110", "model.block_order=bn_after_add"], 8.17),
    (["depth=110", "model.skip=1"], 9.90),
    (["depth=110", "model.skip=1", "model.block_order=full_preact"], 8.91),
    (["model=preact_resnet", "depth=110", "model.skip=1"], 8.91),
    (["model=preact_resnet", "depth=110"], 6.37),
    (["model=resnet_bottleneck", "depth=164", "model.block_order=relu_preact"], 5.91),
    (["model=resnet_bottleneck", "depth=164"], 5.93),
    (["model=resnet_bottleneck", "depth=1001"], 7.61),
    (["model=preact_resnet_bottleneck", "depth=164"], 5.46),
    (["model=preact_resnet_bottleneck", "depth=1001"], 4.92),
    (["model=densenet", "depth=40"], 5.24),
    (["model=densenet_bc", "depth=100"], 4.51),
    (["model=resnext", "depth=29"], 3.65),
    (["model=resnext", "depth=29", "model.cardinality=16"], 3.58),
    (["model=highway", "depth=32"], 8.80),
    # no reference: nets the papers have no number for, two variants at once, a gate bias the table lacks,
    # a net other than the paper's (the pre-activation bottleneck with option A), plain nets (only curves)
    (["depth=56", "model.shortcut_kind=conv1x1"], None),
    (["depth=110", "model.shortcut_kind=conv1x1", "model.block_order=full_preact"], None),
    (["depth=110", "model.shortcut_kind=shortcut_gating", "model.gate_bias=-2"], None),
    (["model=preact_resnet", "depth=164", "model.block=bottleneck"], None),
    (["model=plain", "depth=20"], None), (["model=plain", "depth=56"], None),
    (["model=densenet", "depth=40", "model.growth=24"], None),
])
def test_variants_find_the_papers_error(overrides, error):
    assert ref(*overrides) == error


@pytest.mark.parametrize("overrides,error", [
    (["model=resnet_bottleneck", "depth=164"], 25.16), (["model=resnet_bottleneck", "depth=1001"], 27.82),
    (["model=preact_resnet_bottleneck", "depth=164"], 24.33), (["model=preact_resnet_bottleneck", "depth=1001"], 22.71),
    (["model=densenet", "depth=40"], 24.42), (["model=densenet_bc", "depth=100"], 22.27),
    (["model=resnext", "depth=29"], 17.77), (["model=resnext", "depth=29", "model.cardinality=16"], 17.31),
])
def test_cifar100_rows(overrides, error):
    assert ref(*overrides, dataset="cifar100") == error


def test_each_number_carries_its_statistic():
    # He et al. 2015: best of 5 for ResNet-110, and He et al. 2016's median of 5 for the same net beside it
    baseline = record("depth=110")
    assert (baseline["paper_test_error"], baseline["paper_statistic"]) == (6.43, "best of 5 runs (mean 6.61±0.16)")
    assert "Table 6" in baseline["paper_source"] and baseline["paper_dataset"] == "cifar10"
    (median,) = baseline["paper_also"]
    assert (median["paper_test_error"], median["paper_statistic"]) == (6.61, "median of 5 runs")
    assert "Tables 1-3" in median["paper_source"]
    assert record("depth=56")["paper_statistic"] == "one run" and "paper_also" not in record("depth=56")
    # Table 4: the median at batch 128 first, the batch-64 number (the official code's) beside it
    deep = record("model=preact_resnet_bottleneck", "depth=1001")
    assert deep["paper_statistic"] == "median of 5 runs (mean 4.89±0.14)" and "Tables 3 and 4" in deep["paper_source"]
    assert [(r["paper_test_error"], r["paper_statistic"]) for r in deep["paper_also"]] == [
        (4.62, "median of 5 runs (mean 4.69±0.20)")]
    from resexp.paper import reference  # a run at batch 64 is compared with the batch-64 number first
    at_64 = reference("cifar10", "preact_resnet", 1001, {"shortcut": "B", "block": "bottleneck", "projection_norm": False}, 64)
    assert at_64["paper_test_error"] == 4.62 and at_64["paper_also"][0]["paper_test_error"] == 4.92
    assert record("model=preact_resnet_bottleneck", "depth=1001", dataset="cifar100")["paper_statistic"] == \
        "median of 5 runs (mean 22.68±0.22)"
    assert "Tables 2 and 3" in record("model=preact_resnet", "depth=110")["paper_source"]  # not Table 4
    resnext = record("model=resnext", "depth=29")
    assert resnext["paper_statistic"] == "mean of 10 runs" and "batch 256" in resnext["paper_note"]
    assert "different architecture" in record("model=highway", "depth=32")["paper_note"]
    # every He et al. 2016 CIFAR number is a median of 5 runs
    assert {p.statistic for p in PUBLISHED if "Identity Mappings" in p.source} == {"median of 5 runs"}


def test_preact_bottlenecks_are_the_official_nets():
    """resnet-pre-act.lua (KaimingHe/resnet-1k-layers): projections where dimensions increase, no BN
    after them. The paper's 10.2M for ResNet-1001 does not say how it counts."""
    group = model_group("preact_resnet_bottleneck")
    assert (group["block"], group["shortcut"], group["projection_norm"]) == ("bottleneck", "B", False)
    assert model_group("preact_resnet")["shortcut"] == "A"  # He et al. 2016: CIFAR setup as He et al. 2015
    options = {k: v for k, v in group.items() if k != "name"}
    with torch.device("meta"):
        assert count_parameters(build_model("preact_resnet", 164, **options)) == 1_703_258
        assert count_parameters(build_model("preact_resnet", 1001, **options)) == 10_327_706
        # with a BN after each of the 3 projections: 2 x (64 + 128 + 256) more
        assert count_parameters(build_model("preact_resnet", 164, **{**options, "projection_norm": True})) == 1_704_154


def test_frozen_gating_halves_both_paths():
    """shortcut 0.5, F 0.5 (He et al. 2016, Table 1): x_next = relu(0.5 x + 0.5 F(x))."""
    torch.manual_seed(0)
    model = build_model("resnet", 8, shortcut_kind="scaling", shortcut_scale=0.5, residual_scale=0.5).eval()
    unit = model.stage1[0]
    assert isinstance(unit, ResidualUnit)
    x = torch.randn(2, 16, 8, 8)
    branch = unit.residual[:-1](x)  # F without its scale
    assert torch.allclose(unit(x), torch.relu(0.5 * x + 0.5 * branch))
    assert not torch.allclose(unit(x), torch.relu(0.5 * x + branch))


def test_summary_prints_fail_and_each_reference_with_its_statistic():
    def run(name, kind, error, paper):
        config = {"model.name": "resnet", "model.shortcut": "A", "depth": 110, "dataset.name": "cifar10",
                  "model.shortcut_kind": kind}
        return {"run": name, "status": "finished", "config": config, "family": "resnet-A", "depth": 110,
                "final_test_error": error, "metrics": [], **record("depth=110", f"model.shortcut_kind={kind}")}
    rows = [run("0_resnet110-A_sc=dropout", "dropout", 31.0, FAIL),
            run("1_resnet110-A_sc=shortcut_gating", "shortcut_gating", 7.0, 6.91),
            run("2_resnet110-A", "identity", 7.0, 6.43)]
    console = Console(width=200, record=True)
    console.print(rich_table(rows, "sweep", console))
    text = console.export_text()
    assert any("dropout" in line and "fail (>20%)" in line for line in text.splitlines()) and "6.91" in text
    lines = reference_lines(rows)
    assert "paper %: fail (>20%): He et al. 2016, Identity Mappings, Table 1, dropout 0.5 on the shortcut, cifar10, " \
           "median of 5 runs" in lines
    assert any(line.startswith("paper %: 6.43: He et al. 2015, Table 6, ResNet-110, cifar10, best of 5 runs "
                               "(mean 6.61±0.16); also 6.61: ") and line.endswith("median of 5 runs") for line in lines)


# Numbers README and docs/ quote as a paper's: the cells of every table column headed by a paper, and the figures
# of any sentence that says "He et al. ... report".
PAPER_COLUMN = re.compile(r"paper|he et al\.|torchvision|published", re.I)
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+")


def readme_papers_numbers() -> list[tuple[str, float]]:
    quoted = []
    headers = None
    for line in (line for page in PAGES for line in page.read_text().splitlines()):
        if not line.startswith("|"):
            headers = None
            if re.search(r"et al\. 20\d\d[a-z]? (report|print|give)", line):
                quoted += [(line, float(n)) for n in NUMBER.findall(line.split("report")[-1])]
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if headers is None:
            headers = cells
        elif not set(line) <= set("|- :"):
            quoted += [(cell, float(n)) for h, cell in zip(headers, cells) if PAPER_COLUMN.search(h)
                       for n in NUMBER.findall(cell)]
    return quoted


def test_every_number_the_docs_quote_from_a_paper_is_paper_pys():
    from resexp.paper import HE_2015_MULT_ADDS, TORCHVISION_MULT_ADDS
    known = {x for p in PUBLISHED for x in (p.error, p.mean, p.std) if isinstance(x, float)}
    known |= set(HE_2015_MULT_ADDS.values()) | set(TORCHVISION_MULT_ADDS.values())
    quoted = readme_papers_numbers()
    assert len(quoted) > 30  # the papers' tables are found
    assert [(where, n) for where, n in quoted if n not in known] == []


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    fake_cifar(root, per_batch=4, test=4)
    fake_cifar(root, "cifar100", per_batch=20, test=4)
    return root


def _slow(*overrides):
    return pytest.param(list(overrides), marks=pytest.mark.slow, id="-".join(overrides))


# Every configuration He et al. 2016 Tables 1 and 3, DenseNet, ResNeXt and He et al. 2015's highway row
# add, trained for one step at toy width: the result (status.json's fields) carries the paper's number.
RUNS = [
    ["depth=110", "model.shortcut_kind=scaling", "model.residual_scale=0.5"],
    ["depth=110", "model.skip=1"], ["model=preact_resnet", "depth=110", "model.skip=1"],
    ["model=highway", "depth=32"], ["model=densenet", "depth=40"], ["model=densenet", "depth=40", "dataset=cifar100"],
    ["model=densenet_bc", "depth=100"], ["model=densenet_bc", "depth=100", "dataset=cifar100"],
    ["model=resnet_bottleneck", "depth=1001"], _slow("model=resnet_bottleneck", "depth=1001", "dataset=cifar100"),
    ["model=preact_resnet_bottleneck", "depth=1001"],
    _slow("model=preact_resnet_bottleneck", "depth=1001", "dataset=cifar100"),
    _slow("model=resnext", "depth=29", "model.base_width=64"),
    _slow("model=resnext", "depth=29", "model.cardinality=16", "dataset=cifar100"),
]


@pytest.mark.parametrize("overrides", RUNS, ids=lambda o: "-".join(o) if isinstance(o, list) else None)
def test_a_run_records_its_reference(overrides, data_root, tmp_path):
    dataset = next((o.split("=")[1] for o in overrides if o.startswith("dataset=")), "cifar10")
    model_overrides = [o for o in overrides if not o.startswith("dataset=")]
    with initialize_config_module("resexp.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*model_overrides, f"dataset={dataset}", f"dataset.root={data_root}",
                                          "model.width=2", "trainer.steps=1", "trainer.batch_size=4",
                                          "trainer.eval_every=1", "trainer.precision=fp32", "device=cpu"])
    validate(cfg)
    result = train(cfg, tmp_path)
    expected = ref(*model_overrides, dataset=dataset)
    assert expected is not None and result["paper_test_error"] == expected
    assert result["paper_dataset"] == dataset and result["paper_statistic"] == record(*model_overrides,
                                                                                      dataset=dataset)["paper_statistic"]
