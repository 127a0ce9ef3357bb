"""`resexp landscape`: filter-normalized directions (per-filter norms, BN and biases zero, one seed one
set of directions), the centre of the plane is the trained net's own training loss, the weights come
back unchanged, output files and one-line refusals."""
import json

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image

from resexp import build_model
from resexp.models import FAMILIES
from resexp.cli import main
from resexp.data import load_dataset
from resexp.explain.landscape import directions, grid_coordinates, summary, surface
from resexp.explain.nets import training_subset
from resexp.train.checkpoint import checkpoint_paths
from tests.conftest import refusal_dirs, refused



def _check_filter_normalized(model):
    for d in directions(model, seed=0):
        assert len(d) == len(list(model.parameters()))
        for p, x in zip(model.parameters(), d):
            if p.dim() <= 1:  # BN scale and shift, biases
                assert torch.count_nonzero(x) == 0
                continue
            filters = x.flatten(1).norm(dim=1)
            torch.testing.assert_close(filters, p.detach().flatten(1).norm(dim=1), rtol=1e-5, atol=1e-7)
            assert not torch.allclose(x, p.detach())  # random, not the weights themselves


def test_each_filter_of_a_direction_has_its_weight_filters_norm_and_bn_and_biases_are_zero():
    torch.manual_seed(0)
    model = build_model("resnet", 8, width=4, shortcut="B")  # B: projections (1x1 conv + BN) too
    _check_filter_normalized(model)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 3 * 2 + 1 + 2  # stem, two per block, two projections: all covered above
    conv = directions(model, 0)[0][0]
    assert conv.flatten(1).norm(dim=1).std() > 0  # per filter, not one scale for the whole layer


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_every_family_gets_filter_normalized_directions(arch):
    torch.manual_seed(0)
    _check_filter_normalized(build_model(arch, FAMILIES[arch].smallest_depth(), width=4, num_classes=5))


def test_the_same_seed_gives_the_same_directions_for_nets_of_the_same_shape():
    torch.manual_seed(0)
    plain = build_model("plain", 8, width=4)
    torch.manual_seed(1)
    resnet = build_model("resnet", 8, width=4)  # option A: the same parameter shapes as plain-8

    def unit(direction):  # each filter divided by its norm: what the seed alone decides
        return [x.flatten(1) / x.flatten(1).norm(dim=1, keepdim=True) for x in direction if x.dim() > 1]

    for a, b in zip(directions(plain, 0), directions(resnet, 0)):
        for x, y in zip(unit(a), unit(b)):
            torch.testing.assert_close(x, y)
    assert all(torch.equal(x, y) for x, y in zip(directions(plain, 0)[0], directions(plain, 0)[0]))
    first, second = directions(plain, 0)
    other = directions(plain, 1)[0]
    assert not torch.allclose(first[0], second[0]) and not torch.allclose(first[0], other[0])


def test_the_surface_puts_the_weights_back_and_its_centre_is_the_unmoved_net(compose_cfg):
    cfg = compose_cfg("model=resnet")
    data = load_dataset(cfg.dataset, "cpu")
    torch.manual_seed(0)
    model = build_model("resnet", 8, width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    subset = training_subset(data, 32, 1000, 0, "cpu")
    d1, d2 = directions(model, 0)
    coords = grid_coordinates(3, 0.5)
    assert coords == [-0.5, 0.0, 0.5]
    loss, error = surface(model, subset, d1, d2, coords, 16)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with torch.no_grad():
        out = model.eval()(subset.normalize(subset.train_x))
    assert loss[1][1] == pytest.approx(F.cross_entropy(out, subset.train_y).item(), rel=1e-5)
    assert error[1][1] == pytest.approx(100 * (out.argmax(1) != subset.train_y).float().mean().item())
    assert len({round(v, 6) for row in loss for v in row}) == 9  # every point a different net


def test_summary_numbers():
    bowl = [[(a * a + b * b) + 1.0 for a in (-2, -1, 0, 1, 2)] for b in (-2, -1, 0, 1, 2)]
    s = summary(bowl, [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert s["centre_loss"] == 1 and s["rise"] == 1 and s["rise_at"] == 0.5  # at +-1 grid step: 1 + 1
    assert s["above_2x"] == pytest.approx(20 / 25)  # all but the centre and its 4 axis neighbours
    assert s["local_minima"] == 1 and s["max_loss"] == 9
    bowl[0][0] = 0.5  # a second, lower pit in a corner
    assert summary(bowl, [-1.0, -0.5, 0.0, 0.5, 1.0])["local_minima"] == 2


def test_the_centre_is_the_runs_own_training_loss_and_files(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["landscape", str(tiny_runs / "resnet"), str(tiny_runs / "plain"), "--grid", "3", "--images", "64"]
    assert main([*args, "--json", "--out", "l"]) == 0
    resnet, plain = json.loads(capsys.readouterr().out)
    for r, name in ((resnet, "resnet"), (plain, "plain")):
        cfg = OmegaConf.load(tiny_runs / name / "config.yaml")
        data = load_dataset(cfg.dataset, "cpu")
        model = build_model(cfg.model.name, 8, num_classes=data.num_classes, in_channels=data.in_channels,
                            **{k: v for k, v in cfg.model.items() if k != "name"})
        state = torch.load(checkpoint_paths(tiny_runs / name)[-1], weights_only=True)
        model.load_state_dict(state["model"])
        index = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(0))[:64]
        with torch.no_grad():
            out = model.eval()(data.normalize(data.train_x[index]))
        assert r["summary"]["centre_loss"] == pytest.approx(F.cross_entropy(out, data.train_y[index]).item(), rel=1e-5)
        assert r["loss"][1][1] == r["summary"]["centre_loss"] and r["coords"] == [-1.0, 0.0, 1.0]
        assert len(r["loss"]) == 3 and all(len(row) == 3 for row in r["error"])
        assert r["net"] == {"resnet": "resnet8-A", "plain": "plain8"}[name] and r["images"] == 64
    assert json.loads((tmp_path / "l/landscape.json").read_text()) == [resnet, plain]
    for png in ("landscape_contour.png", "landscape_surface.png", "landscape_slice.png"):
        assert Image.open(tmp_path / "l" / png).size[0] > 1000
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*args[:-2], "--out", "t"]) == 0  # --images by default: 1000, cut to the runs' 256
    out = capsys.readouterr().out
    assert "Training loss on a random plane, 256 training images" in out
    assert "resnet8-A" in out and "plain8" in out
    assert max(len(line) for line in out.splitlines() if not line.startswith("wrote")) <= 80


def test_refusals(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resnet = str(tiny_runs / "resnet")
    refusal_dirs(tmp_path, tiny_runs / "resnet", "landscape.json")
    for args, message in ((["empty"], "error: empty has no checkpoint (checkpoints/step_*.pt): landscape needs"),
                          (["nowhere"], "error: nowhere is not a run directory (no config.yaml)"),
                          ([resnet, "--out", "taken"], "--out taken already holds landscape.json"),
                          ([resnet, "--grid", "4"], "--grid 4 is invalid; it must be odd, from 3 to 101"),
                          ([resnet, "--grid", "103"], "--grid 103 is invalid"),
                          ([resnet, "--span", "0"], "--span 0.0 is invalid"),
                          ([resnet, "--images", "257"], "--images 257 is more than"),
                          ([resnet, "--device", "cuda:7"], "--device cuda:7: this machine has no such CUDA device"),
                          ([], "the following arguments are required: RUN")):
        assert message in refused(capsys, "landscape", *args)
    assert not (tmp_path / "runs").exists()  # nothing written by a refused command
