"""`resexp signal`: block outputs' statistics and Jacobian spectra at initialisation, checked against
closed forms computed another way (numpy statistics, torch.linalg.svdvals of the weights), and its
refusals, one line each before any work."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from resexp.cli import main
from resexp.explain.signal import freeze_batch_statistics, jacobian_singular_values, signal_stats
from resexp.models import model_from_config
from tests.conftest import TINY


def test_a_two_layer_linear_nets_jacobian_spectrum_is_that_of_its_weight_product():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4))  # biases do not change the Jacobian
    x = torch.randn(3, 6)
    first, both = jacobian_singular_values(net, x, [net[0], net])
    product = (net[1].weight @ net[0].weight).double()
    for image in range(3):  # every image has the same Jacobian: W2 W1 (4 x 6, 4 singular values)
        assert both[image].tolist() == pytest.approx(torch.linalg.svdvals(product).tolist(), rel=1e-6)
        assert first[image].tolist() == pytest.approx(torch.linalg.svdvals(net[0].weight.double()).tolist(),
                                                      rel=1e-6)


def test_batch_statistics_held_fixed_give_what_training_mode_computes(compose_cfg):
    torch.manual_seed(0)
    cfg = compose_cfg("model=resnet", "model.norm=batch")
    model = model_from_config(cfg.model, cfg.depth, 10, 3)
    x = torch.randn(16, 3, 8, 8)
    expected = model.train()(x)
    freeze_batch_statistics(model, x)
    assert not model.training
    assert torch.allclose(model(x), expected, atol=1e-5)
    assert torch.allclose(torch.cat([model(image[None]) for image in x]), expected, atol=1e-5)  # one at a time


def _stats(maps: np.ndarray) -> tuple[float, float]:
    """By hand: per channel over images and pixels, then the mean over channels."""
    channels = maps.transpose(1, 0, 2, 3).reshape(maps.shape[1], -1)
    return float((channels.mean(1) ** 2).mean()), float(channels.var(1).mean())


def test_blocks_that_start_as_their_shortcut_keep_the_stems_statistics(compose_cfg):
    """zero_init_residual: every branch ends in a norm whose scale is 0, so each unit outputs
    relu(h(x)) = h(x) of the stem's non-negative output. Identity where the map stays; option A where it
    halves: every other pixel, and as many zero channels again, so both statistics halve."""
    torch.manual_seed(0)
    cfg = compose_cfg("model=resnet", "model.zero_init_residual=true")  # depth 8: one block per stage
    model = model_from_config(cfg.model, cfg.depth, 10, 3)
    x = torch.randn(32, 3, 8, 8)
    with torch.no_grad():
        stem = model.act1(model.bn1(model.conv1(x))).numpy().astype(np.float64)
    stats = signal_stats(model, x)
    assert stats["points"] == ["stem", "stage1.0", "stage2.0", "stage3.0"]
    assert stats["layers"] == [1, 3, 5, 7]
    whole, half, quarter = _stats(stem), _stats(stem[:, :, ::2, ::2]), _stats(stem[:, :, ::4, ::4])
    expected = [whole, whole, [v / 2 for v in half], [v / 4 for v in quarter]]
    assert stats["squared_mean"] == pytest.approx([e[0] for e in expected], rel=1e-9)
    assert stats["variance"] == pytest.approx([e[1] for e in expected], rel=1e-9)


def test_the_depth_axis_counts_layers_as_the_paper_does(compose_cfg):
    """Option B's projections (1x1 convs where the map halves) are shortcuts: not counted (He et al. 2015)."""
    torch.manual_seed(0)
    cfg = compose_cfg("model=resnet", "model.shortcut=B")
    model = model_from_config(cfg.model, cfg.depth, 10, 3)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 9
    assert signal_stats(model, torch.randn(4, 3, 8, 8))["layers"] == [1, 3, 5, 7]


def test_tiny_grid_table_json_and_picture(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["signal", *TINY, "model=plain,resnet", "model.norm=batch,none", "--jacobian-images", "2"]) == 0
    out = capsys.readouterr().out
    assert "Signal at initialisation, one batch of 64 training images" in out
    assert max(map(len, out.splitlines())) <= 80
    (folder,) = (tmp_path / "runs/explain").iterdir()
    rows = json.loads((folder / "signal.json").read_text())
    assert [r["net"] for r in rows] == ["plain8 norm=batch", "plain8 norm=none", "resnet8-A norm=batch",
                                        "resnet8-A norm=none"]
    for r in rows:
        assert r["points"] == ["stem", "stage1.0", "stage2.0", "stage3.0"] and r["layers"] == [1, 3, 5, 7]
        jacobian = r["jacobian"]
        assert jacobian["images"] == 2 and jacobian["inputs"] == 3 * 8 * 8
        assert [s["stage"] for s in jacobian["stages"]] == ["stage1", "stage2", "stage3"]
        assert [s["layers"] for s in jacobian["stages"]] == [3, 5, 7]
        # 2 images x min(192 inputs, 16x8x8 / 32x4x4 / 64x2x2 outputs) singular values, largest first
        values = [s["singular_values"] for s in jacobian["stages"]]
        assert list(map(len, values)) == [384, 384, 2 * 192]
        assert all(v == sorted(v, reverse=True) for v in values)
        assert f"{r['variance'][-1]:.2e}" in out and f"{jacobian['stages'][-1]['spread']:.2e}" in out
    assert Image.open(folder / "signal.png").size == (1800, 1350)


def test_without_jacobians_two_panels_and_dashes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["signal", *TINY, "model=plain", "--jacobian-images", "0", "--images", "32", "--out", "s"]) == 0
    out = capsys.readouterr().out
    assert "one batch of 32 training images" in out and out.count(" - │") == 2
    (row,) = json.loads((tmp_path / "s/signal.json").read_text())
    assert "jacobian" not in row and row["images"] == 32
    assert Image.open(tmp_path / "s/signal.png").size == (1800, 675)


def test_deep_linear_signal_and_jacobian_scale_as_alpha_to_the_depth(tmp_path, capsys, monkeypatch, compose_cfg):
    """h_k = alpha^k h_0: both statistics scale as alpha^(2k); the Jacobian to h_depth is alpha^depth times
    the first layer's weight (the pooling to 8x8 is the identity on 8x8 images)."""
    monkeypatch.chdir(tmp_path)
    config = [*TINY, "model=linear_deep", "depth=6", "model.init=scaled_identity"]
    assert main(["signal", *config, "model.init_alpha=0.5,1.0", "--jacobian-images", "3", "--json",
                 "--out", "s"]) == 0
    half, one = json.loads(capsys.readouterr().out)
    assert half["layers"] == list(range(1, 8))
    for k in range(7):
        for key in ("squared_mean", "variance"):
            assert half[key][k] == pytest.approx(0.25 ** k * one[key][k], rel=1e-5)
            assert one[key][k] == pytest.approx(one[key][0], rel=1e-5)
    torch.manual_seed(0)  # the run's init: its first layer's weight
    embed = model_from_config(compose_cfg(*config[len(TINY):]).model, 6, 10, 3).embed.weight.double()
    expected = torch.linalg.svdvals(embed).tolist() * 3  # 64 singular values per image, every image the same
    (last_one,), (last_half,) = one["jacobian"]["stages"], half["jacobian"]["stages"]
    assert sorted(last_one["singular_values"], reverse=True) == pytest.approx(sorted(expected, reverse=True),
                                                                               rel=1e-3)  # 4 digits in the JSON
    assert last_half["mean_square"] == pytest.approx(0.5 ** 12 * last_one["mean_square"], rel=1e-5)
    assert last_half["spread"] == pytest.approx(last_one["spread"], rel=1e-5)


@pytest.mark.parametrize("flags,line", [
    (["dataset.image_size=64"], "error: the Jacobians of resnet8-A are too large to compute here: 12,288 inputs x "
                                "114,688 stage outputs x 4 images = 5,637M entries, 9.4e+13 multiply-adds (at most "
                                "268M and 2e+12); give fewer --jacobian-images (0: none) or a smaller "
                                "dataset.image_size"),
    (["--jacobian-images", "65"], "error: --jacobian-images 65 is more than the batch's 64 images; choose at most 64"),
    (["--images", "300"], "error: a batch of 300 images is more than the 256 training images of resnet8-A's "
                          "dataset; give --images 256 or fewer"),
    (["--images", "1"], "error: resexp signal: --images 1 is invalid; it must be at least 2 (a variance over the "
                        "batch); see resexp signal --help"),
])
def test_refusals_are_one_line_before_any_work(flags, line, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["signal", *TINY, "model=resnet", *flags, "--out", "s"]) == 2
    captured = capsys.readouterr()
    assert captured.err == line + "\n" and captured.out == ""
    assert not (tmp_path / "s").exists()
