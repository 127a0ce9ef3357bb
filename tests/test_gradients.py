"""`resexp gradients`: one row and one line per net, the gradient norms of a run's first step, the deep
linear net's gain alpha**depth, and outputs that are never overwritten."""
import json

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resexp.cli import main
from tests.conftest import TINY


def test_tiny_grid_table_json_and_picture(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    args = ["gradients", *TINY, "model=plain,resnet", "model.norm=batch,none"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Gradients at initialisation, one batch of 64 training images" in out
    assert max(map(len, out.splitlines())) <= 80
    (folder,) = (tmp_path / "runs/explain").iterdir()  # the default output directory
    assert folder.name.startswith("gradients-")
    rows = json.loads((folder / "gradients.json").read_text())
    assert [r["net"] for r in rows] == ["plain8 norm=batch", "plain8 norm=none", "resnet8-A norm=batch",
                                        "resnet8-A norm=none"]
    for r in rows:
        assert r["net"].split()[0] in out and f"{r['first_last_ratio']:.2e}" in out
        # conv1, 3 stages x 1 block x 2 convs, fc: the 8 layers of training's weight_grad_norm/NNN_<layer> tags.
        assert r["layers"][0] == "000_conv1" and r["layers"][-1] == "007_fc" and len(r["layers"]) == 8
        assert len(r["grad_norm"]) == len(r["activation_std"]) == 8
        assert all(g > 0 for g in r["grad_norm"])
        assert r["first_last_ratio"] == pytest.approx(r["grad_norm"][0] / r["grad_norm"][-1])
    assert Image.open(folder / "gradients.png").size == (1800, 675)
    # Nothing is overwritten: an --out holding the files is refused before any work; they stay as they were.
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main([*args, "--out", str(folder)]) == 2
    assert capsys.readouterr().err == (f"error: --out {folder} already holds gradients.png, gradients.json; "
                                       "choose another directory\n")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gradient_norms_equal_the_first_training_step(tmp_path, capsys, monkeypatch, precision):
    """The same weights and batch as step 1 of `resexp train`, through its own step: the norms it logs
    there are the same, in the precision the run trains in (bf16 here; auto is fp32 on the CPU)."""
    monkeypatch.chdir(tmp_path)
    config = [*TINY, "model=plain", "model.norm=none", "trainer.log_every=1", "dataset.augment.flip=true",
              f"trainer.precision={precision}"]
    assert main(["train", *config, "hydra.run.dir=run"]) == 0
    assert main(["gradients", *config, "--json", "--out", "g"]) == 0
    (row,) = json.loads((tmp_path / "g/gradients.json").read_text())
    events = EventAccumulator("run", size_guidance={"scalars": 0}).Reload()
    logged = [events.Scalars(f"weight_grad_norm/{layer}")[0] for layer in row["layers"]]
    assert all(e.step == 1 for e in logged)
    assert [e.value for e in logged] == pytest.approx(row["grad_norm"], rel=1e-5)


@pytest.mark.parametrize("residual,alphas", [("false", (0.5, 1.0, 1.5)), ("true", (0.01,))])
def test_deep_linear_gain_is_alpha_to_the_depth(residual, alphas, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["gradients", *TINY, "model=linear_deep", "depth=50", f"model.residual={residual}",
                 f"model.init_alpha={','.join(map(str, alphas))}", "--json", "--out", "g"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for alpha, r in zip(alphas, rows, strict=True):
        per_layer = alpha if residual == "false" else 1 + alpha
        assert r["gain"] == pytest.approx(per_layer ** 50, rel=1e-5)  # float32: 50 roundings of about 6e-8
        assert r["layers"][0] == "000_embed" and r["layers"][-1] == "051_fc"
    if residual == "false":  # every square layer's gradient scales as alpha**(depth - 1): all vanish or explode
        assert rows[0]["grad_norm"][25] / rows[1]["grad_norm"][25] == pytest.approx(0.5 ** 49, rel=1e-3)
