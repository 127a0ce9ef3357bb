"""`resexp paths`: the gradients of all 2^n routings add up to the ordinary gradient, k = 0 is the gradient
through the shortcuts alone, the path-length distribution sums to 2^n, output files and refusals."""
import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from resexp import build_model
from resexp.cli import main
from resexp.explain.paths import effective_range, input_gradient, residual_blocks, routed
from tests.conftest import refusal_dirs, refused


def _net(arch, depth, **options):
    """A small net in eval mode whose BN running statistics are not the init's 0 and 1."""
    torch.manual_seed(0)
    model = build_model(arch, depth, width=4, num_classes=5, **options)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 8, 8))
    return model.eval()


def _gradients(model, every_subset=True):
    """(ordinary input gradient, {subset of blocks: input gradient along those branches})."""
    torch.manual_seed(1)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    (ordinary,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    blocks = residual_blocks(model)
    with routed(blocks) as routers:
        loss = F.cross_entropy(model(x), y, reduction="sum")
        subsets = [s for k in range(len(blocks) + 1) for s in itertools.combinations(range(len(blocks)), k)]
        by_subset = {s: input_gradient(loss, x, routers, set(s)) for s in subsets}
        torch.testing.assert_close(input_gradient(loss, x, routers, None), ordinary)  # routed yet unchanged
    return ordinary, by_subset


@pytest.mark.parametrize("arch, depth, options", [
    ("resnet", 8, {}),                                     # option A: zero-padded shortcuts where the map shrinks
    ("resnet", 14, {"shortcut": "B"}),                     # 6 blocks, 1x1 projections
    ("preact_resnet", 8, {}),
    ("resnet_bottleneck", 11, {}),
    ("highway", 8, {}),                                    # gated: the gate belongs to the branch
    ("resnet", 8, {"block_order": "bn_after_add"}),
    ("linear_deep", 4, {"residual": True}),
    ("imagenet_resnet", 18, {}),                           # 8 blocks: 256 routings
    ("resnext", 29, {"cardinality": 2, "base_width": 2}),  # 9 blocks: 512 routings
], ids=["resnet-A", "resnet-B-6blocks", "preact", "bottleneck", "highway", "bn_after_add", "linear", "imagenet",
        "resnext"])
def test_the_gradients_of_all_routings_add_up_to_the_ordinary_gradient(arch, depth, options):
    model = _net(arch, depth, **options)
    n = len(residual_blocks(model))
    assert n == {8: 3, 14: 6, 11: 3, 4: 4, 18: 8, 29: 9}[depth]
    ordinary, by_subset = _gradients(model)
    assert len(by_subset) == 2 ** n
    total = torch.stack(list(by_subset.values())).sum(0)
    torch.testing.assert_close(total, ordinary, rtol=1e-4, atol=1e-6 * ordinary.abs().max().item())
    # every length carries some gradient, and no one routing is the whole gradient
    assert all(g.abs().sum() > 0 for g in by_subset.values())
    assert not any(torch.allclose(g, ordinary) for g in by_subset.values())


def test_k0_is_the_gradient_through_the_shortcuts_alone():
    # Residual linear net: h_k = h_{k-1} + W_k h_{k-1}. Through the shortcuts alone it is fc(embed(x)).
    model = _net("linear_deep", 3, residual=True)
    ordinary, by_subset = _gradients(model)
    torch.manual_seed(1)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    shortcuts_only = model.fc(model.embed(F.adaptive_avg_pool2d(x, 8).flatten(1)))
    (expected,) = torch.autograd.grad(F.cross_entropy(model(x).detach() - shortcuts_only.detach() + shortcuts_only,
                                                      y, reduction="sum"), x)
    torch.testing.assert_close(by_subset[()], expected)
    # A ResNet whose branches end in a BN of scale 0 passes no gradient through them: k = 0 is all of it.
    model = _net("resnet", 8, zero_init_residual=True)
    ordinary, by_subset = _gradients(model)
    torch.testing.assert_close(by_subset[()], ordinary)
    assert all(torch.count_nonzero(g) == 0 for s, g in by_subset.items() if s)


def test_effective_range_is_the_shortest_run_holding_the_share():
    assert effective_range([1, 5, 10, 5, 1], 0.9) == (1, 3)   # 20 of 22
    assert effective_range([1, 5, 10, 5, 1], 0.4) == (2, 2)
    assert effective_range([1, 5, 10, 5, 1], 1.0) == (0, 4)
    assert effective_range([0, 6, 1, 7, 0], 0.5) == (3, 3)


def test_distribution_and_files(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["paths", str(tiny_runs / "resnet"), "--images", "16", "--samples", "2", "--json", "--out", "p"]) == 0
    r = json.loads(capsys.readouterr().out)
    rows = r["by_length"]
    assert r["blocks"] == 3 and [row["k"] for row in rows] == [0, 1, 2, 3]
    assert [row["paths"] for row in rows] == [1, 3, 3, 1] and sum(row["paths"] for row in rows) == 2 ** 3
    for row in rows:
        assert row["contribution"] == pytest.approx(row["paths"] * row["magnitude"])
        assert 0 < row["min"] <= row["magnitude"] <= row["max"]
    assert rows[0]["min"] == rows[0]["max"] and rows[3]["min"] == rows[3]["max"]  # one routing each
    e = r["effective"]
    assert 0 <= e["from"] <= e["peak"] <= e["to"] <= 3 and e["gradient_share"] >= 0.9
    assert json.loads((tmp_path / "p/paths.json").read_text()) == r
    assert Image.open(tmp_path / "p/paths.png").size == (2250, 660)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["paths", str(tiny_runs / "resnet"), "--images", "8", "--samples", "1", "--out", "t"]) == 0
    out = capsys.readouterr().out
    assert "Gradient by path length, resnet8-A (3 residual blocks)" in out and "paths (2^n)" in out
    assert max(len(line) for line in out.splitlines() if "wrote" not in line) <= 80


def test_refusals(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resnet = str(tiny_runs / "resnet")
    refusal_dirs(tmp_path, tiny_runs / "resnet", "paths.png")
    plain = str(tiny_runs / "plain")
    for args, message in (([plain], "is plain8, which has no residual blocks: there are no paths but one"),
                          (["empty"], "error: empty has no checkpoint (checkpoints/step_*.pt): paths needs"),
                          (["nowhere"], "error: nowhere is not a run directory (no config.yaml)"),
                          ([resnet, "--out", "taken"], "--out taken already holds paths.png"),
                          ([resnet, "--samples", "0"], "--samples 0 is invalid"),
                          ([resnet, "--share", "1.5"], "--share 1.5 is invalid"),
                          ([resnet, "--images", "300"], "--images 300 is more than"),
                          ([resnet, plain], "unrecognized arguments"),
                          ([], "the following arguments are required: RUN")):
        assert message in refused(capsys, "paths", *args)
    assert not (tmp_path / "runs").exists()
