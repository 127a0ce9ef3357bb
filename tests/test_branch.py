"""model.branch_scaling (resexp/models/branch.py, init.py): SkipInit/ReZero, Fixup and the depth scale of the
residual branch F, checked against the papers' closed forms, computed here from the depth alone."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resexp import build_model
from resexp.cli import main
from resexp.models import FAMILIES, families_with
from resexp.models.branch import Bias, Multiplier
from resexp.models.residual import Residual
from resexp.models.shortcuts import Scale

SCALED = families_with("branch_scaling")  # the families whose record takes the option


def units(model):
    return [m for m in model.modules() if isinstance(m, Residual)]


def branch_convs(unit) -> list:
    """The convs of a unit's residual branch F, input to output (not its shortcut's)."""
    side = {id(m) for m in unit.shortcut.modules()}
    return [m for m in unit.modules() if isinstance(m, nn.Conv2d) and id(m) not in side]


def residual_units(depth: int, bottleneck: bool = False, skip: int = 2, wide: bool = False) -> int:
    """L of a CIFAR net from its depth alone: 3 stages of n units, depth = 3 * (layers a unit) * n + 2
    (WRN-d: d = 6n + 4)."""
    if wide:
        return (depth - 4) // 2
    return (depth - 2) // (3 if bottleneck else skip)


def test_the_option_is_in_every_cifar_residual_familys_record():
    assert SCALED == ["resnet", "resnet_bottleneck", "preact_resnet", "wide_resnet"]


# (family, depth, options, m = weight layers in a branch)
FIXUP_NETS = [("resnet", 20, {}, 2), ("resnet", 110, {}, 2), ("resnet", 11, {"skip": 3}, 3),
              ("resnet_bottleneck", 20, {}, 3), ("preact_resnet", 14, {}, 2),
              ("resnet", 8, {"block_order": "bn_after_add", "shortcut": "B"}, 2), ("wide_resnet", 16, {"widen": 1}, 2)]


@pytest.mark.parametrize("arch,depth,options,m", FIXUP_NETS)
def test_fixup_scales_each_branch_by_L_to_the_minus_1_over_2m_minus_2(arch, depth, options, m):
    """Zhang et al. 2019, sec. 3: the same draws as without Fixup, every branch layer but the last times
    L^(-1/(2m-2)), the last and the classifier at 0, multipliers at 1, biases at 0."""
    L = residual_units(depth, bottleneck=arch == "resnet_bottleneck", skip=options.get("skip", 2),
                       wide=arch == "wide_resnet")
    torch.manual_seed(0)  # the same draws: rezero builds the same units with a gate instead of Fixup's scalars
    reference = build_model(arch, depth, norm="none", branch_scaling="rezero", **options)
    torch.manual_seed(0)
    fixup = build_model(arch, depth, norm="none", branch_scaling="fixup", **options)
    assert len(units(fixup)) == L
    factor = L ** (-1 / (2 * m - 2))
    for ref, unit in zip(units(reference), units(fixup)):
        ref_convs, convs = branch_convs(ref), branch_convs(unit)
        assert len(convs) == m
        for a, b in zip(ref_convs[:-1], convs[:-1]):
            assert torch.allclose(b.weight, a.weight * factor, rtol=1e-6, atol=0)
        assert torch.count_nonzero(convs[-1].weight) == 0
        assert [s.weight.item() for s in unit.modules() if isinstance(s, Multiplier)] == [1.0]
        assert all(b.bias.item() == 0 for b in unit.modules() if isinstance(b, Bias))
        # rule 3: a bias before each conv and activation of F
        if hasattr(unit, "residual"):
            names = [name for name, _ in unit.residual.named_children()]
            assert all(f"bias_{name}" in names for name in names if name.startswith(("conv", "act")))
        else:  # the wide block's two activations and two convs
            assert sum(isinstance(b, Bias) for b in unit.modules()) == 4
    assert torch.count_nonzero(fixup.fc.weight) == 0 and torch.count_nonzero(fixup.fc.bias) == 0
    ran = []  # every bias is on the forward path
    hooks = [b.register_forward_hook(lambda m, i, o: ran.append(m)) for b in fixup.modules() if isinstance(b, Bias)]
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(fixup(x), torch.zeros(2, 10))  # the classifier at 0: every logit 0, the loss ln(10)
    assert len(ran) == len(hooks) and len({id(m) for m in ran}) == len(hooks)


def test_a_fixup_branchs_first_layer_has_the_closed_form_output_variance():
    """A kaiming (fan-out) 3x3 conv of C to C channels has output variance 2 on unit-variance inputs
    (He et al. 2015b); Fixup scales its weights by L^(-1/(2m-2)), so the variance is 2 L^(-1/(m-1)):
    2/54 in ResNet-110 (m = 2), 2/sqrt(18) in the bottleneck ResNet-56 (m = 3; its 1x1 conv's too)."""
    torch.manual_seed(0)
    for arch, depth, m in (("resnet", 110, 2), ("resnet_bottleneck", 56, 3)):
        L = residual_units(depth, bottleneck=m == 3)
        model = build_model(arch, depth, norm="none", branch_scaling="fixup", width=32)
        variances = []
        for unit in units(model)[1:4]:  # stage 1, where shapes stay
            conv = next(c for c in unit.residual.modules() if isinstance(c, nn.Conv2d))
            x = torch.randn(64, conv.in_channels, 12, 12)
            out = conv(x)[..., 1:-1, 1:-1]  # interior pixels: the zero padding lowers the border's variance
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
            variances.append(out.var().item() / (fan_in / fan_out))  # the kaiming gain for C_in != C_out
        expected = 2 * L ** (-1 / (m - 1))
        assert abs(sum(variances) / len(variances) / expected - 1) < 0.1, (arch, variances, expected)


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("arch", SCALED)
def test_rezero_units_start_as_their_shortcut_and_learn_their_gate(arch, norm):
    """x_next = f(h(x) + alpha F(x)) with alpha = 0: every unit is f(h(x)) at init (for x >= 0, what a
    ReLU hands on); F gets no gradient until alpha moves, alpha gets one at once (Bachlechner et al. 2020)."""
    torch.manual_seed(0)
    options = {"shortcut": "B"} if arch != "wide_resnet" else {"widen": 1}  # a projection where shapes change
    model = build_model(arch, FAMILIES[arch].smallest_depth(), norm=norm, branch_scaling="rezero",
                        **options).eval()
    for unit in units(model):
        x = torch.rand(2, branch_convs(unit)[0].in_channels, 8, 8)
        after = getattr(unit, "after", nn.Identity())  # f, where the unit has one
        assert torch.equal(unit(x), after(unit.shortcut(x)))
    loss = F.cross_entropy(model.train()(torch.randn(4, 3, 8, 8)), torch.randint(0, 10, (4,)))
    loss.backward()
    alphas = [m.weight for m in model.modules() if isinstance(m, Multiplier)]
    assert len(alphas) == len(units(model)) and all(a.item() == 0 for a in alphas)
    assert all(a.grad is not None and a.grad.abs() > 0 for a in alphas)
    assert all(torch.count_nonzero(branch_convs(u)[-1].weight.grad) == 0 for u in units(model))


@pytest.mark.parametrize("arch,depth,residual_scale", [("resnet", 20, 1.0), ("resnet", 110, 1.0),
                                                       ("resnet_bottleneck", 20, 1.0), ("preact_resnet", 8, 0.5),
                                                       ("wide_resnet", 16, 1.0)])
def test_depth_scaling_multiplies_F_by_one_over_sqrt_of_the_units(arch, depth, residual_scale):
    """Bordelon et al. 2023: F / sqrt(L), L the residual units (9 in ResNet-20, 54 in ResNet-110), times the
    constant residual_scale where one is set."""
    L = residual_units(depth, bottleneck=arch == "resnet_bottleneck", wide=arch == "wide_resnet")
    options = {"residual_scale": residual_scale} if residual_scale != 1 else {}
    model = build_model(arch, depth, branch_scaling="depth", width=8, **options).eval()
    assert len(units(model)) == L
    for unit in units(model):
        scales = [m for m in unit.modules() if isinstance(m, Scale)]
        assert len(scales) == 1 and math.isclose(scales[0].scale, residual_scale / math.sqrt(L), rel_tol=1e-12)
    unit = units(model)[1]
    x = torch.randn(2, branch_convs(unit)[0].in_channels, 8, 8)
    scale = next(m for m in unit.modules() if isinstance(m, Scale))
    scaled = unit(x)
    if hasattr(unit, "after"):  # f after the addition: F layer by layer, unscaled
        branch = x
        for layer in unit.residual:
            branch = branch if isinstance(layer, Scale) else layer(branch)
    else:  # y = F(x) + h(x): F is the output less the shortcut, with the scale set to 1
        scale.scale = 1.0
        branch = unit(x) - unit.shortcut(x)
    after = getattr(unit, "after", nn.Identity())
    assert torch.allclose(scaled, after(unit.shortcut(x) + branch * residual_scale / math.sqrt(L)), atol=1e-6)


def test_each_scaling_trains_resnet110_without_norms_where_the_plain_residual_net_explodes():
    """At init: the unscaled ResNet-110 without norms starts at a loss of ~1e7 (docs/explain.md); each
    scaling starts near ln(10) and takes an SGD step at the paper's lr 0.1 to a finite loss."""
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    for scaling in ("none", "rezero", "fixup", "depth"):
        torch.manual_seed(0)
        model = build_model("resnet", 110, norm="none", branch_scaling=scaling, width=8)
        loss = F.cross_entropy(model(x), y)
        if scaling == "none":
            assert loss > 1e3
            continue
        assert loss < 3, scaling
        loss.backward()
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        assert torch.isfinite(F.cross_entropy(model(x), y)), scaling


@pytest.mark.parametrize("overrides,message", [
    (["model.branch_scaling=fixup"], "model.branch_scaling=fixup takes model.norm=none, not 'batch'"),
    (["model.branch_scaling=fixup", "model.norm=none", "model.zero_init_residual=true"],
     "model.branch_scaling=fixup sets each branch's last layer to 0 itself"),
    (["model.branch_scaling=rezero", "model.zero_init_residual=true"],
     "model.branch_scaling=rezero with model.zero_init_residual=true"),
    (["model=plain", "model.branch_scaling=rezero"],
     "model.branch_scaling does not apply to model plain; it applies to: resnet, resnet_bottleneck, preact_resnet"),
    (["model.branch_scaling=skipinit"], "model.branch_scaling='skipinit' is invalid; choose one of: none, rezero, "
                                        "fixup, depth"),
])
def test_meaningless_combinations_are_refused_in_one_line(tmp_path, monkeypatch, capsys, overrides, message):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *overrides, "device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()
