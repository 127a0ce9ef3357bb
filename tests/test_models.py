import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resexp import build_model, count_parameters
from resexp.models.activations import ACTIVATIONS
from resexp.models.shortcuts import PadShortcut, Projection
from tests.conftest import ROOT, copy_repository, register

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


def contribute_family(tmp_path) -> Path:
    """A copy of the repository with tests/new_family/res_stack.py added as CONTRIBUTING.md says: the module
    in resexp/models/, its import and its line in FAMILIES. Nothing else."""
    copy = copy_repository(tmp_path)
    shutil.copy(ROOT / "tests/new_family/res_stack.py", copy / "resexp/models/res_stack.py")
    register(copy / "resexp/models/__init__.py", "FAMILIES", "res_stack", "RES_STACK")
    return copy


@pytest.mark.slow  # ~25 s: a copy of the repository, its install and the per-family tests there
def test_a_new_family_is_one_module_and_one_registry_line(tmp_path):
    """The suite's per-family tests (parametrized over the registry) take the new family with no edit:
    its layer count, smallest net, config group option, determinism, filter-normalized directions,
    label and a smoke run without a depth; and the docs' tables gain its row by regeneration."""
    copy = contribute_family(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1"}
    tests = ["tests/test_describe.py", "tests/test_landscape.py", "tests/test_config.py", "tests/test_recovery.py",
             "tests/test_families.py", "tests/test_models.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow or not slow",
                          "-k", "res_stack or (composes_and_validates and model)", *tests], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", run.stdout).group(1))
    assert passed >= 6 and "failed" not in run.stdout, run.stdout[-2000:]
    docs = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_docs.py", "-k", "generated"]
    stale = subprocess.run(docs, cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert "2 failed" in stale.stdout, stale.stdout[-2000:]  # both tables miss it until regenerated
    subprocess.run([sys.executable, "docs/config_reference.py"], cwd=copy, env=env, check=True, timeout=300)
    for page in ("config.md", "variants.md"):
        assert "| `res_stack` | 4, 6, 8, 10, 12, 14, ... | 6 | `res_stack6-2`" in (copy / "docs" / page).read_text()
    assert subprocess.run(docs, cwd=copy, env=env, capture_output=True, timeout=300).returncode == 0
