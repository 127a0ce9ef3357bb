"""The deep linear net: its forward gain is alpha**depth (residual: (1 + alpha)**depth), and it trains
(or diverges) through `resexp train` like any model."""
import json

import pytest
import torch

from resexp import build_model
from resexp.cli import main
from tests.conftest import TINY


@pytest.mark.parametrize("residual,alpha,gain", [(False, 0.5, 0.5 ** 50), (False, 1.0, 1.0), (False, 1.5, 1.5 ** 50),
                                                 (True, 0.01, 1.01 ** 50)])
def test_forward_gain_is_alpha_to_the_depth(residual, alpha, gain):
    model = build_model("linear_deep", 50, width=16, init="scaled_identity", init_alpha=alpha, residual=residual)
    h = torch.randn(4, 16)
    # 0.5 and 1.5 are exact in float32; 50 roundings of 1.5 * x cost at most about 50 * 6e-8.
    assert torch.allclose(model.layers(h), gain * h, rtol=1e-5, atol=0)
    assert len(model.layers) == 50 and model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_trains_through_resexp_train_and_diverges_with_alpha_above_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "model=linear_deep", "hydra.run.dir=ok"]) == 0
    status = json.loads((tmp_path / "ok/status.json").read_text())
    assert status["status"] == "finished" and status["final_test_error"] < 90  # 10 classes: chance is 90%
    assert main(["train", *TINY, "model=linear_deep", "depth=50", "model.init_alpha=1.5", "hydra.run.dir=bad"]) == 3
    assert json.loads((tmp_path / "bad/status.json").read_text())["status"] == "diverged"


def test_residual_must_be_a_boolean(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "model=linear_deep", "model.residual=maybe"]) == 2
    assert capsys.readouterr().err == "error: model.residual='maybe' is invalid; it must be true or false\n"
