"""The families beyond He et al. 2015: each built from its real config, at the paper's size."""
import json
import pickle

import pytest
import torch
import torch.nn.functional as F

from resexp import build_model, count_parameters
from resexp.cli import main
from resexp.config import group_options, validate
from resexp.models import FAMILIES, label, model_from_config, model_options
from resexp.models.gates import ExclusiveGatedUnit
from resexp.models.vgg import VGG_DEPTHS

from tests.conftest import TINY
from tests.test_cli import run_dirs

# (model, depth, overrides, published parameters in millions, source); the papers print one decimal,
# rounded or cut (ResNeXt 16x64d counts 68.16M, printed 68.1M), so we allow 0.06M either way.
PUBLISHED = [
    ("preact_resnet", 110, [], 1.7, "He et al. 2016, Table 4: ResNet-110 (pre-activation)"),
    ("preact_resnet_bottleneck", 164, [], 1.7, "He et al. 2016, Table 4: ResNet-164"),
    ("densenet", 40, [], 1.0, "Huang et al. 2017, Table 2: DenseNet (L=40, k=12)"),
    ("densenet_bc", 100, [], 0.8, "Huang et al. 2017, Table 2: DenseNet-BC (L=100, k=12)"),
    ("resnext", 29, [], 34.4, "Xie et al. 2017, Table 7: ResNeXt-29, 8x64d"),
    ("resnext", 29, ["model.cardinality=16"], 68.1, "Xie et al. 2017, Table 7: ResNeXt-29, 16x64d"),
    # Simonyan and Zisserman 2015, Table 2 (133, 133, 138, 144 M); torchvision's vgg11..19: 132.9 .. 143.7 M
    ("vgg", 11, ["model.layout=imagenet", "model.norm=none"], 132.9, "VGG-11 (A)"),
    ("vgg", 16, ["model.layout=imagenet", "model.norm=none"], 138.4, "VGG-16 (D)"),
    ("vgg", 19, ["model.layout=imagenet", "model.norm=none"], 143.7, "VGG-19 (E)"),
    ("wide_resnet", 28, ["model.widen=10"], 36.5, "Zagoruyko and Komodakis 2016, Table 4: WRN-28-10"),
    ("wide_resnet", 16, ["model.widen=4"], 2.7, "Zagoruyko and Komodakis 2016: WRN-16-4"),
]


def _count(cfg, num_classes):
    with torch.device("meta"):  # counts only: no memory, no init time
        return count_parameters(model_from_config(cfg.model, cfg.depth, num_classes, 3))


@pytest.mark.parametrize("model,depth,overrides,millions,source", PUBLISHED,
                         ids=[f"{p[0]}{p[1]}{''.join(p[2])}" for p in PUBLISHED])
def test_configs_build_the_published_sizes(compose_cfg, model, depth, overrides, millions, source):
    cfg = compose_cfg(f"model={model}", f"depth={depth}", *overrides)
    classes = 1000 if "model.layout=imagenet" in overrides else 10
    assert abs(_count(cfg, classes) / 1e6 - millions) < 0.06, source


def test_vgg19_is_torchvisions_and_far_bigger_than_resnet152(compose_cfg):
    vgg = _count(compose_cfg("model=vgg", "depth=19", "model.layout=imagenet", "model.norm=none"), 1000)
    assert vgg == 143_667_240  # torchvision.models.vgg19 (its docs' num_params)
    resnet152 = _count(compose_cfg("model=imagenet_resnet", "depth=152"), 1000)
    assert resnet152 == 60_192_808 and vgg > 2.3 * resnet152  # 8x deeper, 2.4x fewer parameters


def test_vgg_imagenet_layout_runs_at_224():
    model = build_model("vgg", 11, width=2, layout="imagenet", num_classes=1000)
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("arch,depth,options", [
    ("preact_resnet", 8, {}), ("preact_resnet", 11, {"block": "bottleneck", "shortcut": "B"}),
    ("highway", 8, {"gate_bias": -2.0}), ("densenet", 10, {}),
    ("densenet_bc", 10, {"bottleneck": True, "compression": 0.5}),
    ("resnext", 11, {"width": 4, "cardinality": 2, "base_width": 2, "shortcut": "B"}),
    ("vgg", 11, {"width": 4}), ("vgg", 13, {"width": 4, "norm": "none"}),
])
def test_new_families_train_a_step_and_pickle(arch, depth, options):
    torch.manual_seed(0)
    model = build_model(arch, depth, **options)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()) if p.grad is not None)
    clone = pickle.loads(pickle.dumps(model.eval()))
    assert torch.equal(model(x), clone(x))


def test_preact_resnet_normalizes_before_the_pool_not_after_the_first_conv():
    model = build_model("preact_resnet", 8)
    assert isinstance(model.bn1, torch.nn.Identity) and isinstance(model.bn_out, torch.nn.BatchNorm2d)


def test_highway_with_closed_gates_is_the_identity():
    """T(x) = sigmoid(-100) ~ 0: every block carries its input, y = x (Srivastava et al. 2015)."""
    model = build_model("highway", 8, gate_bias=-100.0).eval()
    blocks = [m for m in model.modules() if isinstance(m, ExclusiveGatedUnit)]
    assert len(blocks) == 3
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(blocks[0](x), x, atol=1e-6)
    open_gate = build_model("highway", 8, gate_bias=100.0).eval()  # T = 1: the block is H(x) alone
    h = open_gate.stage1[0]
    assert torch.allclose(h(x), h.residual(x), atol=1e-6)


@pytest.mark.parametrize("arch,depth,message", [
    ("densenet", 41, "depth=41 is not of the form 3n+4 with n >= 1; nearest valid depths: 40, 43"),
    ("densenet_bc", 41, "depth=41 is not of the form 6n+4 with n >= 1; nearest valid depths: 40, 46"),
    ("resnext", 21, "depth=21 is not of the form 9n+2 with n >= 1; nearest valid depths: 20, 29"),
    ("vgg", 20, "depth=20 is not defined for model vgg; valid depths: 11, 13, 16, 19"),
])
def test_family_depth_errors_name_the_valid_depths(compose_cfg, arch, depth, message):
    cfg = compose_cfg(f"model={arch}", f"depth={depth}")
    with pytest.raises(ValueError) as e:
        model_from_config(cfg.model, cfg.depth, 10, 3)
    assert str(e.value) == message


# One multirun per depth rule, each over the families that share a valid depth.
CLI_SWEEPS = [
    (["model=preact_resnet,highway", "depth=8"], ["0_preact_resnet8-A", "1_highway8-A"]),
    (["model=densenet,densenet_bc,vgg", "depth=16", "model.width=4"],
     ["0_densenet16", "1_densenet_bc16", "2_vgg16"]),
    (["model=resnext", "depth=11", "model.width=4", "model.cardinality=2", "model.base_width=2"],
     ["0_resnext11-2x2d"]),
]


@pytest.mark.parametrize("overrides,jobs", CLI_SWEEPS, ids=["preact_highway", "densenet_vgg", "resnext"])
def test_new_families_train_two_steps_through_the_cli(tmp_path, monkeypatch, overrides, jobs):
    monkeypatch.chdir(tmp_path)  # the CLI's own entry point, in this process (its subprocess is tested elsewhere)
    assert main(["train", "-m", *TINY, "trainer.steps=2", *overrides, "hydra.sweep.dir=sweep"]) == 0
    dirs = run_dirs(tmp_path / "sweep")
    assert [d.name for d in dirs] == jobs
    for d in dirs:
        status = json.loads((d / "status.json").read_text())
        assert status["status"] == "finished" and status["steps"] == 2 and status["parameters"] > 0


@pytest.mark.parametrize("side", [1, 7, 14, 28, 10])
def test_vgg_pooling_to_7x7_equals_adaptive_pooling(side):
    """AvgPoolTo (deterministic on CUDA where the sizes divide) gives AdaptiveAvgPool2d's values and gradients."""
    from resexp.models.pool import AvgPoolTo
    x = torch.randn(2, 3, side, side, requires_grad=True)
    ours, theirs = AvgPoolTo(7)(x), torch.nn.AdaptiveAvgPool2d(7)(x)
    weights = torch.randn_like(theirs)
    assert torch.allclose(ours, theirs, atol=1e-6)
    grad_ours, = torch.autograd.grad((ours * weights).sum(), x)
    grad_theirs, = torch.autograd.grad((theirs * weights).sum(), x)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-6)


@pytest.mark.parametrize("option", group_options("model"))
def test_every_model_builds_at_its_familys_default_depth(compose_cfg, option):
    """`model=X` without a depth: the family's declared default depth, which its own rule accepts."""
    cfg = compose_cfg(f"model={option}", tiny=False)
    assert cfg.depth == FAMILIES[cfg.model.name].depth_for(model_options(cfg.model))
    validate(cfg)
    assert _count(cfg, 10) > 0


@pytest.mark.slow
@pytest.mark.parametrize("option", group_options("model"))
def test_every_model_trains_a_smoke_run_without_a_depth(tmp_path, monkeypatch, option):
    monkeypatch.chdir(tmp_path)
    # fp32 pinned: precision=auto may time bf16 faster here, and imagenet_plain34 diverges in 3 bf16 steps
    assert main(["train", "+debug=smoke", f"model={option}", "device=cpu", "trainer.precision=fp32",
                 "hydra.run.dir=run"]) == 0
    assert json.loads((tmp_path / "run/status.json").read_text())["status"] == "finished"


def test_every_model_option_has_a_label_of_its_own(compose_cfg):
    """Two model options at one depth never share a name (run directories, reports, describe's rows)."""
    labels = {}
    for option in group_options("model"):
        cfg = compose_cfg(f"model={option}", tiny=False)
        labels.setdefault(label(cfg.model.name, "", model_options(cfg.model)), []).append(option)
    assert all(len(options) == 1 for options in labels.values()), labels


def test_describe_names_the_bottleneck_preset_apart(capsys):
    assert main(["describe", "model=preact_resnet_bottleneck,preact_resnet", "depth=56", "model.shortcut=B",
                 "--json"]) == 0
    nets = [row["net"] for row in json.loads(capsys.readouterr().out)]
    assert nets == ["preact_resnet_bottleneck56-B", "preact_resnet56-B"]


def test_wide_resnet_is_named_by_depth_and_width(capsys):
    assert main(["describe", "model=wide_resnet", "depth=28", "model.widen=10", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["net"] == "wide_resnet28-10" and round(row["parameters"] / 1e6, 1) == 36.5
