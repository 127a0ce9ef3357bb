"""ImageNet-style and CIFAR bottleneck families: torchvision's parameter counts, shapes, depth errors."""
import pickle

import pytest
import torch

from resexp import build_model, count_parameters
from resexp.models.bottleneck import Bottleneck
from resexp.models.shortcuts import PadShortcut, Projection

# torchvision.models.resnet18..152 at 1000 classes (their docs' "num_params"); option B = their layout.
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


@pytest.mark.parametrize("depth,params", TORCHVISION_PARAMS.items())
def test_imagenet_resnet_parameter_counts_match_torchvision(depth, params):
    with torch.device("meta"):  # counts only: no memory, no init time
        model = build_model("imagenet_resnet", depth, shortcut="B", width=64, num_classes=1000)
    assert count_parameters(model) == params


def test_imagenet_plain_has_the_resnet_layers_without_shortcuts():
    for depth in (18, 34):
        with torch.device("meta"):
            plain = build_model("imagenet_plain", depth, width=64, num_classes=1000)
            resnet = build_model("imagenet_resnet", depth, shortcut="A", width=64, num_classes=1000)
        assert count_parameters(plain) == count_parameters(resnet)  # option A adds no parameters
        assert not any(isinstance(m, (PadShortcut, Projection)) for m in plain.modules())
    assert count_parameters(plain) == TORCHVISION_PARAMS[34] - 173_824  # B minus its 3 projections (1x1 conv + BN)


@pytest.mark.parametrize("arch,depth,shortcut", [("imagenet_resnet", 18, "A"), ("imagenet_resnet", 18, "B"),
                                                 ("imagenet_resnet", 18, "C"), ("imagenet_resnet", 50, "A"),
                                                 ("imagenet_plain", 34, None)])
def test_imagenet_nets_forward_with_every_shortcut(arch, depth, shortcut):
    model = build_model(arch, depth, **({"shortcut": shortcut} if shortcut else {}), width=4, num_classes=5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_bottleneck_block_shapes_and_projection_counts():
    model = build_model("imagenet_resnet", 50, shortcut="B", width=8)
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16 and blocks[0].conv3.out_channels == 4 * blocks[0].conv1.out_channels
    # B: a projection where channels or size change = the first block of each of the 4 stages.
    assert sum(isinstance(m, Projection) for m in model.modules()) == 4
    c = build_model("imagenet_resnet", 50, shortcut="C", width=8)
    assert sum(isinstance(m, Projection) for m in c.modules()) == 16


def test_cifar_bottleneck_164_has_the_papers_size():
    model = build_model("resnet_bottleneck", 164, shortcut="B")
    assert round(count_parameters(model) / 1e6, 1) == 1.7  # He et al. 2016: ResNet-164, 1.7M
    assert sum(isinstance(m, Bottleneck) for m in model.modules()) == 3 * 18
    small = build_model("resnet_bottleneck", 11, shortcut="A", width=4)
    assert small(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    clone = pickle.loads(pickle.dumps(small.eval()))
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(small(x), clone(x))


@pytest.mark.parametrize("arch,depth,message", [
    ("imagenet_resnet", 20, "depth=20 is not defined for model imagenet_resnet; valid depths: 18, 34, 50, 101, 152"),
    ("imagenet_plain", 50, "depth=50 is not defined for model imagenet_plain; valid depths: 18, 34"),
    ("resnet_bottleneck", 111, "depth=111 is not of the form 9n+2 with n >= 1; nearest valid depths: 110, 119"),
])
def test_undefined_depth_lists_the_valid_ones(arch, depth, message):
    with pytest.raises(ValueError) as e:
        build_model(arch, depth)
    assert str(e.value) == message
