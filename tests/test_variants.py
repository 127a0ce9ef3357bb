"""Options of the residual families: block order, shortcuts, skip, init, norm, learned activations."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resexp import build_model, count_parameters
from resexp.models import FAMILIES, check_model_args, defaults
from resexp.models.activations import LearnedSwish
from resexp.models.blocks import BasicBlock
from resexp.models.gates import ExclusiveGatedUnit, Gate, ShortcutGatedUnit
from resexp.models.init import INITS
from resexp.models.norms import NORMS
from resexp.models.orders import ORDERS, ResidualUnit
from resexp.models.shortcuts import SHORTCUT_KINDS, SHORTCUTS, PadShortcut, PoolProjection, Projection, Scale


def units(model):
    return [m for m in model.modules() if isinstance(m, (BasicBlock, ResidualUnit, ExclusiveGatedUnit))]


def names(seq):
    return [name for name, _ in seq.named_children()]


# He et al. 2016, Fig. 4: the residual branch F and what follows the addition, for two convs.
FIG_4 = {
    "bn_after_add": (["conv1", "bn1", "act1", "conv2"], ["bn_out", "act_out"]),
    "relu_before_add": (["conv1", "bn1", "act1", "conv2", "bn2", "act2"], []),
    "relu_preact": (["act1", "conv1", "bn1", "act2", "conv2", "bn2"], []),
    "full_preact": (["bn1", "act1", "conv1", "bn2", "act2", "conv2"], []),
}


@pytest.mark.parametrize("order", FIG_4)
def test_block_orders_place_bn_and_relu_as_in_fig_4(order):
    model = build_model("resnet", 8, block_order=order)
    unit = model.stage1[0]
    assert isinstance(unit, ResidualUnit)
    assert (names(unit.residual), names(unit.after)) == FIG_4[order]
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_original_order_is_the_classic_block_with_the_same_parameters():
    classic = build_model("resnet", 8)
    assert isinstance(classic.stage1[0], BasicBlock)
    # the same layers in another order: only full_preact moves a BN onto a narrower input (stage starts)
    assert count_parameters(build_model("resnet", 8, block_order="relu_preact")) == count_parameters(classic)


def test_full_preact_leaves_the_identity_path_without_any_op():
    model = build_model("preact_resnet", 14, shortcut="B").eval()
    assert sum(unit.residual.conv1.stride == (1, 1) for unit in units(model)) == 4
    for unit in units(model):
        if unit.residual.conv1.stride == (1, 1):  # where dimensions stay
            assert isinstance(unit.shortcut, nn.Identity) and len(unit.after) == 0
            x = torch.randn(1, unit.residual.conv1.in_channels, 4, 4)
            assert torch.equal(unit(x), unit.residual(x) + x)  # x_next = F(x) + x, exactly


@pytest.mark.parametrize("skip,depth", [(1, 5), (2, 8), (3, 11)])
def test_skip_puts_a_shortcut_every_skip_convs(skip, depth):
    model = build_model("resnet", depth, skip=skip)
    blocks = units(model)
    assert len(blocks) == 3  # n = 1 block per stage
    for block in blocks:
        assert sum(isinstance(m, nn.Conv2d) for m in block.modules() if not isinstance(m, Projection)) == skip
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert convs + 1 == depth  # plus the classifier


def test_skip_changes_the_depth_rule_and_its_error():
    with pytest.raises(ValueError, match="depth=21 is not of the form 9n\\+2 with n >= 1; nearest valid depths: 20, 29"):
        build_model("resnet", 21, skip=3)
    with pytest.raises(ValueError, match="not of the form 3n\\+2"):
        build_model("plain", 21, skip=1)


def test_pooling_shortcuts():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = PadShortcut(1, 3, 2, pool=True)(x)
    assert y.shape == (1, 3, 2, 2) and torch.equal(y[0, 0], F.avg_pool2d(x, 2)[0, 0])
    assert torch.count_nonzero(y[:, 1:]) == 0
    a, a_pool = build_model("resnet", 8, shortcut="A"), build_model("resnet", 8, shortcut="A_pool")
    b, d = build_model("resnet", 8, shortcut="B"), build_model("resnet", 8, shortcut="D")
    assert count_parameters(a_pool) == count_parameters(a)  # parameter-free
    assert count_parameters(d) == count_parameters(b)        # the same projections, after a pool
    assert sum(isinstance(m, PoolProjection) for m in d.modules()) == 2
    for model in (a_pool, d):
        assert model(torch.randn(2, 3, 9, 9)).shape == (2, 10)  # odd sizes pool with ceil, as the convs do


@pytest.mark.parametrize("kind", SHORTCUT_KINDS)
def test_shortcut_kinds_of_fig_2_build_and_train(kind):
    torch.manual_seed(0)
    model = build_model("resnet", 8, shortcut_kind=kind, shortcut_scale=0.5, shortcut_dropout=0.5, gate_bias=-6.0)
    loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.randint(0, 10, (4,)))
    loss.backward()
    assert torch.isfinite(loss)
    inner = model.stage1[0]
    expected = {"identity": nn.Identity, "scaling": Scale, "conv1x1": Projection, "dropout": nn.Dropout,
                "exclusive_gating": nn.Identity, "shortcut_gating": nn.Identity}[kind]
    assert isinstance(inner.shortcut, expected)
    if kind.endswith("gating"):
        assert isinstance(inner, ExclusiveGatedUnit if kind == "exclusive_gating" else ShortcutGatedUnit)
        assert torch.all(inner.gate.bias == -6.0)  # the init keeps the configured gate bias


def test_scaling_and_shortcut_gating_compute_fig_2():
    x = torch.randn(1, 16, 4, 4)
    unit = build_model("resnet", 8, shortcut_kind="scaling", shortcut_scale=0.5).eval().stage1[0]
    f = unit.bn2(unit.conv2(unit.act1(unit.bn1(unit.conv1(x)))))
    assert torch.allclose(unit(x), torch.relu(f + 0.5 * x), atol=1e-6)
    gated = build_model("resnet", 8, shortcut_kind="shortcut_gating").eval().stage1[0]
    g = gated.gate(x)
    assert torch.allclose(gated(x), torch.relu(gated.residual(x) + (1 - g) * x), atol=1e-6)


@pytest.mark.parametrize("arch,depth,options", [
    ("resnet", 8, {}), ("resnet", 8, {"block_order": "full_preact"}), ("resnet", 11, {"skip": 3}),
    ("resnet", 8, {"norm": "none"}), ("resnet", 8, {"norm": "group"}), ("resnet_bottleneck", 20, {}),
    ("preact_resnet", 8, {}), ("resnext", 20, {"width": 4, "cardinality": 2, "base_width": 2}),
])
def test_zero_init_residual_blocks_start_as_the_identity(arch, depth, options):
    def identity_blocks(model):
        return [m for m in model.eval().modules() if hasattr(m, "residual_end") and isinstance(m.shortcut, nn.Identity)]

    def outputs_equal_inputs(block):
        conv = next(m for m in block.modules() if isinstance(m, nn.Conv2d))
        x = torch.rand(2, conv.in_channels, 4, 4)  # >= 0: what a ReLU hands on
        return torch.equal(block(x), x)

    zeroed = identity_blocks(build_model(arch, depth, zero_init_residual=True, **options))
    assert zeroed and all(outputs_equal_inputs(b) for b in zeroed)
    assert not any(outputs_equal_inputs(b) for b in identity_blocks(build_model(arch, depth, **options)))


@pytest.mark.parametrize("init", INITS)
def test_every_init_gives_a_trainable_net(init):
    torch.manual_seed(0)
    model = build_model("resnet", 8, init=init, init_std=0.05)
    loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.randint(0, 10, (4,)))
    assert torch.isfinite(loss)


def test_inits_draw_what_they_say():
    torch.manual_seed(0)
    normal = build_model("resnet", 8, init="normal", init_std=0.02)
    assert abs(normal.stage2[0].conv2.weight.std().item() - 0.02) < 0.002
    ortho = build_model("resnet", 8, init="orthogonal").stage1[0].conv1.weight.flatten(1)
    assert torch.allclose(ortho @ ortho.T, torch.eye(16), atol=1e-5)
    same = [build_model("resnet", 8, init=name, width=8) for name in ("kaiming", "kaiming_normal") if
            torch.manual_seed(1)]
    assert all(torch.equal(p, q) for p, q in zip(same[0].parameters(), same[1].parameters()))


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_trains_without_batch_statistics_where_it_should(norm):
    model = build_model("resnet", 8, norm=norm).eval()
    x = torch.randn(3, 3, 8, 8)
    # group, layer and none treat every image alone: its output does not depend on the batch
    alone = model(x[:1])
    if norm != "batch":
        assert torch.allclose(model(x)[:1], alone, atol=1e-5)
    kinds = {type(m) for m in model.modules()}
    assert {"batch": nn.BatchNorm2d, "group": nn.GroupNorm, "layer": nn.GroupNorm, "none": nn.Identity}[norm] in kinds


def test_learned_swish_has_a_beta_per_channel_and_learns_it():
    act = LearnedSwish(3)
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(act(x), F.silu(x))  # beta starts at 1
    model = build_model("resnet", 8, activation="learned_swish")
    betas = [m.beta for m in model.modules() if isinstance(m, LearnedSwish)]
    assert betas and {b.numel() for b in betas} == {16, 32, 64}
    F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.randint(0, 10, (4,))).backward()
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in betas)


@pytest.mark.parametrize("arch,options,message", [
    ("densenet", {"block_order": "full_preact"},
     "model.block_order='full_preact' does not apply to model densenet; it applies to: resnet, resnet_bottleneck"),
    ("resnet_bottleneck", {"skip": 3}, "model.skip=3 does not apply to model resnet_bottleneck; it applies to: plain"),
    ("preact_resnet", {"block": "bottleneck", "skip": 3}, "model.skip applies to basic blocks"),
    ("resnet", {"skip": 4}, "model.skip=4 is invalid; choose one of: 1, 2, 3"),
    ("resnet", {"block_order": "preact"}, "model.block_order='preact' is invalid; choose one of: original, bn_after_add"),
    ("resnet", {"shortcut_kind": "gate"}, "model.shortcut_kind='gate' is invalid; choose one of: identity, scaling"),
    ("resnet", {"shortcut_dropout": 1.0}, "model.shortcut_dropout=1.0 is invalid; it must be a number in [0, 1)"),
    ("resnet", {"zero_init_residual": "yes"}, "model.zero_init_residual='yes' is invalid; it must be true or false"),
    ("densenet", {"compression": 0}, "model.compression=0 is invalid; it must be a number in (0, 1]"),
    ("vgg", {"layout": "tiny"}, "model.layout='tiny' is invalid; choose one of: imagenet, cifar"),
    ("resnet", {"colour": 1}, "model.colour is not a model option; model resnet takes: width, init"),
    ("plain", {"shortcut": "B"}, "model.shortcut='B' does not apply to model plain; it applies to: resnet"),
])
def test_bad_or_meaningless_options_are_one_line(arch, options, message):
    with pytest.raises(ValueError) as e:
        check_model_args(arch, 20, **options)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_each_model_option_composes_to_its_familys_record(compose_cfg, arch):
    """`model=arch` is the family's options record, every key with its default, and nothing else."""
    model = compose_cfg(f"model={arch}").model
    assert {k: v for k, v in model.items() if k != "name"} == defaults(arch) and model.name == arch


@pytest.mark.parametrize("override,expected", [
    ("model.shortcut=B", "model.shortcut does not apply to model plain; it applies to: resnet, resnet_bottleneck"),
    ("model.shortcutt=B", "model.shortcutt is not a config key; did you mean model."),
])
def test_another_familys_option_on_the_command_line_is_one_line(tmp_path, monkeypatch, capsys, override, expected):
    """`model=plain model.shortcut=B` names the families that have a shortcut, not a +key to add."""
    from resexp.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["train", "model=plain", override, "device=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and not (tmp_path / "runs").exists()
