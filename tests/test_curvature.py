"""`resexp curvature` and explain/hessian.py: Lanczos's top eigenvalue and Hutchinson's trace against
Hessians known in closed form (a linear regression's X^T X / n, a 2-layer linear net's) and against the
full Hessian of a tiny ResNet with BN in train mode; the command's loss is the run's own train-mode
loss, its lr the checkpoint's, its files, --steps, and one-line refusals."""
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
from resexp.explain.curvature import train_mode_losses
from resexp.explain.hessian import hutchinson_trace, hvp_operator, lanczos_top
from resexp.explain.nets import training_subset
from resexp.train.checkpoint import checkpoint_paths
from tests.conftest import TINY, refusal_dirs, refused


def _regression(seed=0, n=64, d=12):
    """A linear regression loss 0.5 ||X w - y||^2 / n: its Hessian is X^T X / n wherever w is."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)  # correlated: off-diagonal entries
    y = torch.randn(n, generator=g)
    model = torch.nn.Linear(d, 1, bias=False)
    return model, [(X, lambda out: 0.5 * ((out.squeeze(1) - y) ** 2).mean())], X.T @ X / n


def test_lanczos_finds_a_linear_regressions_top_eigenvalue_within_its_residual():
    model, losses, H = _regression()
    apply, n = hvp_operator(model, losses)
    assert n == 12
    v = torch.randn(12)
    torch.testing.assert_close(apply(v), H @ v, rtol=1e-4, atol=1e-4)
    exact = torch.linalg.eigvalsh(H.double())[-1].item()
    top = lanczos_top(apply, n, 30, torch.Generator().manual_seed(0), tol=1e-4)
    assert top["eigenvalue"] == pytest.approx(exact, rel=1e-4)
    assert abs(top["eigenvalue"] - exact) <= top["residual"] + 1e-4 * exact and top["steps"] <= 12
    short = lanczos_top(apply, n, 2, torch.Generator().manual_seed(0))  # 2 steps: a lower bound, not yet there
    assert short["steps"] == 2 and short["eigenvalue"] <= exact * (1 + 1e-6)


def test_a_two_layer_linear_nets_top_eigenvalue_is_its_closed_form():
    """f(x) = v^T u x on x = 1, loss 0.5 (v^T u - t)^2. Its Hessian in (u, v) is g g^T + r J, g = (v, u),
    r = v^T u - t, J = [[0, I], [I, 0]]; at a minimum (r = 0) its one nonzero eigenvalue is |u|^2 + |v|^2."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 5, bias=False), torch.nn.Linear(5, 1, bias=False))
    u, v = net[0].weight.detach().view(-1), net[1].weight.detach().view(-1)
    x = torch.ones(1, 1)
    for t in ((v @ u).item(), (v @ u).item() + 0.7):  # at a minimum, then off it
        apply, n = hvp_operator(net, [(x, lambda out, t=t: 0.5 * ((out - t) ** 2).sum())])
        top = lanczos_top(apply, n, 10, torch.Generator().manual_seed(1), tol=1e-6)["eigenvalue"]
        g = torch.cat([v, u])
        J = torch.zeros(10, 10)
        J[:5, 5:] = J[5:, :5] = torch.eye(5)
        H = torch.outer(g, g) + ((v @ u).item() - t) * J
        assert top == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-4)
        if t == (v @ u).item():
            assert top == pytest.approx((u @ u + v @ v).item(), rel=1e-4)


def test_hutchinsons_trace_is_within_its_standard_error_and_that_error_is_rademachers():
    model, losses, H = _regression(seed=3)
    apply, n = hvp_operator(model, losses)
    probes = 400
    est = hutchinson_trace(apply, n, probes, torch.Generator().manual_seed(0))
    exact = H.trace().item()
    assert len(est["samples"]) == probes
    assert abs(est["trace"] - exact) < 3 * est["se"]
    # Var(z^T H z) = 2 * sum of the squared off-diagonal entries for Rademacher z (Hutchinson 1990)
    variance = 2 * ((H ** 2).sum() - (H.diag() ** 2).sum()).item()
    assert est["se"] == pytest.approx((variance / probes) ** 0.5, rel=0.15)
    assert hutchinson_trace(apply, n, 1, torch.Generator())["se"] is None
    diagonal = hvp_operator(torch.nn.Linear(3, 1, bias=False),
                            [(torch.eye(3), lambda out: 0.5 * (out ** 2).sum())])[0]  # H = I: exact every time
    assert hutchinson_trace(diagonal, 3, 5, torch.Generator())["trace"] == pytest.approx(3)


def test_on_a_tiny_resnet_with_bn_in_train_mode_both_match_the_full_hessian(compose_cfg):
    """The command's own loss (train-mode BN per batch, functorch's running-statistics-free BN) through
    forward-over-reverse products, against the full Hessian by double backward of the same loss written
    out with model.train() and F.cross_entropy, batch by batch."""
    cfg = compose_cfg("model=resnet")
    data = training_subset(load_dataset(cfg.dataset, "cpu"), 24, 24, 0, "cpu")
    torch.manual_seed(0)
    model = build_model("resnet", 8, width=1, num_classes=data.num_classes, in_channels=data.in_channels)
    reference = build_model("resnet", 8, width=1, num_classes=data.num_classes, in_channels=data.in_channels)
    reference.load_state_dict(model.state_dict())
    names = [k for k, _ in reference.named_parameters()]
    shapes = [p.shape for _, p in reference.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])
    assert len(flat) < 700

    def loss(w):
        params = dict(zip(names, (t.view(s) for t, s in zip(w.split([s.numel() for s in shapes]), shapes))))
        total = 0
        for start in (0, 10, 20):  # batches of 10: 10, 10, 4 images
            x, y = data.normalize(data.train_x[start:start + 10]), data.train_y[start:start + 10]
            out = torch.func.functional_call(reference.train(), params, (x,))
            total = total + F.cross_entropy(out, y) * len(y) / 24
        return total

    H = torch.autograd.functional.hessian(loss, flat, vectorize=True)
    apply, n = hvp_operator(model, train_mode_losses(model, data, 10))
    assert n == len(flat)
    v = torch.randn(n)
    torch.testing.assert_close(apply(v), H @ v, rtol=1e-3, atol=1e-4)
    top = lanczos_top(apply, n, 60, torch.Generator().manual_seed(0), tol=1e-5)
    assert top["eigenvalue"] == pytest.approx(torch.linalg.eigvalsh(H.double())[-1].item(), rel=1e-3)
    est = hutchinson_trace(apply, n, 30, torch.Generator().manual_seed(0))
    assert abs(est["trace"] - H.trace().item()) < 3 * est["se"]


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A tiny resnet-8 trained 2 epochs of 4 steps, checkpointed at steps 4 and 8 (multistep lr: 0.01, 0.001)."""
    root = tmp_path_factory.mktemp("curvature")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tiny = [o for o in TINY if not o.startswith("trainer.epochs=")]
    assert main(["train", *tiny, "trainer.epochs=2", "model=resnet", f"hydra.run.dir={root / 'resnet'}"]) == 0
    torch.set_num_threads(threads)
    return root / "resnet"


def test_the_command_measures_the_runs_own_training_loss_at_each_checkpoint(two_checkpoints, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = two_checkpoints
    args = ["curvature", str(run), "--images", "64", "--lanczos", "4", "--probes", "2"]
    assert main([*args, "--json", "--out", "c"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["net"] == "resnet8-A" and r["images"] == 64 and r["batch_size"] == 64
    assert [c["step"] for c in r["checkpoints"]] == [4, 8]
    cfg = OmegaConf.load(run / "config.yaml")
    data = load_dataset(cfg.dataset, "cpu")
    index = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(0))[:64]
    for c, path, lr in zip(r["checkpoints"], checkpoint_paths(run), (0.01, 0.001)):
        assert c["lr"] == pytest.approx(lr) and c["edge"] == pytest.approx(2 / lr)
        assert c["momentum"] == 0.9 and c["edge_momentum"] == pytest.approx(3.8 / lr)
        model = build_model("resnet", 8, num_classes=data.num_classes, in_channels=data.in_channels)
        model.load_state_dict(torch.load(path, weights_only=True)["model"])
        with torch.no_grad():  # train mode: the batch's own statistics (one batch of 64 here)
            out = model.train()(data.normalize(data.train_x[index]))
        assert c["loss"] == pytest.approx(F.cross_entropy(out, data.train_y[index]).item(), rel=1e-5)
        assert c["top_eigenvalue"] > 0 and c["lanczos_steps"] <= 4 and len(c["trace_samples"]) == 2
        assert c["trace"] == pytest.approx(sum(c["trace_samples"]) / 2)
    assert json.loads((tmp_path / "c/curvature.json").read_text()) == [r]
    assert Image.open(tmp_path / "c/curvature.png").size[0] > 1000
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*args, "--steps", "8", "--out", "t"]) == 0
    out = capsys.readouterr().out
    assert "Training loss's Hessian, 64 training images, BN in train mode" in out and "resnet8-A" in out
    assert max(len(line) for line in out.splitlines() if not line.startswith("wrote")) <= 80
    assert [c["step"] for c in json.loads((tmp_path / "t/curvature.json").read_text())[0]["checkpoints"]] == [8]


def test_refusals(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resnet = str(tiny_runs / "resnet")
    refusal_dirs(tmp_path, tiny_runs / "resnet", "curvature.json")
    for args, message in ((["empty"], "error: empty has no checkpoint (checkpoints/step_*.pt): curvature needs"),
                          (["nowhere"], "error: nowhere is not a run directory (no config.yaml)"),
                          ([resnet, "--out", "taken"], "--out taken already holds curvature.json"),
                          ([resnet, "--steps", "3"], f"--steps 3: {resnet} has no checkpoint at that step; it kept "
                                                     "steps 4"),
                          ([resnet, "--steps", "4,x"], "--steps 4,x is invalid; give checkpoint steps as integers"),
                          ([resnet, "--lanczos", "0"], "--lanczos 0 is invalid; it must be a positive integer"),
                          ([resnet, "--probes", "-1"], "--probes -1 is invalid"),
                          ([resnet, "--images", "257"], "--images 257 is more than"),
                          ([resnet, "--device", "cuda:7"], "--device cuda:7: this machine has no such CUDA device"),
                          ([], "the following arguments are required: RUN")):
        assert message in refused(capsys, "curvature", *args)
    assert not (tmp_path / "runs").exists()  # nothing written by a refused command


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_every_familys_hessian_vector_product_is_double_backwards(arch):
    """Forward-over-reverse through each family's net in train mode (its BN without running statistics,
    dropout off) against reverse-over-reverse (autograd.grad twice) through the same net, in float64: in
    float32 the deep ImageNet nets' entries (up to 1e5 on 4 images) differ by rounding."""
    torch.manual_seed(0)
    model = build_model(arch, FAMILIES[arch].smallest_depth(), width=4, num_classes=5).double()
    x, y = torch.randn(4, 3, 16, 16, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    data = type("Images", (), {"train_x": x, "train_y": y, "normalize": staticmethod(lambda images: images)})
    apply, n = hvp_operator(model, train_mode_losses(model, data, 4))
    v = torch.randn(n, dtype=torch.float64)
    params = list(model.parameters())
    g = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
    hv = torch.autograd.grad(torch.cat([t.reshape(-1) for t in g]) @ v, params)
    torch.testing.assert_close(apply(v), torch.cat([t.reshape(-1) for t in hv]), rtol=1e-9, atol=1e-9)
