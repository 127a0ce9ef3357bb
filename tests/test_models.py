import json
import pickle
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resexp import build_model, count_parameters
from resexp.models.options import ConvOptions, count
from resexp.models.activations import ACTIVATIONS
from resexp.models.shortcuts import PadShortcut, Projection

# He et al. 2015, Table 6: parameters of the CIFAR ResNets with option A, in millions.
PAPER_PARAMS = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}


@pytest.mark.parametrize("depth,millions", PAPER_PARAMS.items())
def test_parameter_counts_match_the_paper(depth, millions):
    resnet = count_parameters(build_model("resnet", depth, shortcut="A"))
    assert round(resnet / 1e6, 2 if millions < 1 else 1) == millions
    assert count_parameters(build_model("plain", depth)) == resnet


def test_shortcut_options_shapes_and_counts():
    a, b, c = (build_model("resnet", 20, shortcut=s) for s in "ABC")
    x = torch.randn(2, 3, 32, 32)
    for model in (a, b, c):
        assert model(x).shape == (2, 10)
    # A: no projection at all; B: one 1x1 conv + BN where stages 2 and 3 begin; C: one per block.
    assert sum(isinstance(m, PadShortcut) for m in a.modules()) == 2
    assert not any(isinstance(m, Projection) for m in a.modules())
    assert sum(isinstance(m, Projection) for m in b.modules()) == 2
    assert sum(isinstance(m, Projection) for m in c.modules()) == 9
    # B adds 16*32 + 32*64 conv weights and 2*(32+64) BN parameters.
    assert count_parameters(b) - count_parameters(a) == 16 * 32 + 32 * 64 + 2 * (32 + 64)
    assert count_parameters(a) < count_parameters(b) < count_parameters(c)


def test_option_a_pads_with_zeros_and_subsamples():
    x = torch.randn(1, 16, 8, 8)
    y = PadShortcut(16, 32, 2)(x)
    assert y.shape == (1, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_trains_a_step(activation):
    torch.manual_seed(0)
    model = build_model("resnet", 8, activation=activation, width=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_models_pickle_and_reload_with_the_same_outputs():
    model = build_model("resnet", 8, shortcut="A").eval()
    clone = pickle.loads(pickle.dumps(model))
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x), clone(x))


def test_plain_net_has_no_shortcut_path():
    model = build_model("plain", 8)
    assert not any(isinstance(m, (PadShortcut, Projection)) for m in model.modules())


def test_build_model_api_for_notebooks():
    model = build_model(arch="resnet", depth=56, shortcut="A", activation="relu", width=16,
                        num_classes=100, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("depth,nearest", [(21, "20, 26"), (7, "8"), (111, "110, 116")])
def test_invalid_depth_names_nearest_valid_depths(depth, nearest):
    with pytest.raises(ValueError, match=f"nearest valid depths: {nearest}$"):
        build_model("resnet", depth)


@pytest.mark.parametrize("kwargs,word", [({"shortcut": "E"}, "model.shortcut='E' is invalid"),
                                         ({"activation": "swish"}, "model.activation='swish' is invalid"),
                                         ({"arch": "alexnet"}, "unknown model")])
def test_unknown_options_name_what_is_allowed(kwargs, word):
    with pytest.raises(ValueError, match=f"{word}.*choose one of"):
        build_model(**{"arch": "resnet", "depth": 20, **kwargs})


# A family written as CONTRIBUTING.md says: one module (here, the test), one registry line.
@dataclass
class StackOptions(ConvOptions):
    widen: int = count(2, "the stack's channels are width x widen")


class Stack(nn.Module):
    """`depth` - 1 convs and a linear classifier."""

    def __init__(self, *, depth, num_classes, in_channels, width, activation, norm, widen):
        super().__init__()
        channels = [in_channels] + [width * widen] * (depth - 1)
        self.convs = nn.Sequential(*(nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.ReLU())
                                     for a, b in zip(channels, channels[1:])))
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, x):
        return self.fc(self.convs(x).mean((2, 3)))


def stack_depth(depth, **_):
    if depth < 2:
        raise ValueError(f"depth={depth} is invalid for model stack; it must be >= 2")


def test_a_new_family_is_one_module_and_one_registry_line(tmp_path, monkeypatch, capsys):
    from resexp.cli import main
    from resexp.config import register
    from resexp.models import FAMILIES, Family
    from tests.conftest import TINY
    monkeypatch.setitem(FAMILIES, "stack", Family(Stack, stack_depth, StackOptions))  # the registry line
    register()  # what a new process does when Hydra loads resexp's configs
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "model=stack", "depth=3", "model.widen=3", "trainer.steps=2",
                 "hydra.run.dir=run"]) == 0
    status = json.loads((tmp_path / "run/status.json").read_text())
    assert status["status"] == "finished" and status["steps"] == 2
    assert status["parameters"] == count_parameters(build_model("stack", 3, widen=3))
    capsys.readouterr()
    assert main(["train", *TINY, "model=stack", "depth=3", "model.widen=0"]) == 2  # its record checks it
    assert "model.widen=0 is invalid; it must be a positive integer" in capsys.readouterr().err
    assert main(["train", *TINY, "model=stack", "depth=1"]) == 2  # and its depth rule
    assert "depth=1 is invalid for model stack" in capsys.readouterr().err
