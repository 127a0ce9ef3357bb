"""`resexp describe`: the papers' parameter and multiply-add counts, per-stage rows that add up, bad input."""
import json
import re

import pytest
import torch

from resexp import build_model, count_parameters
from resexp.cli import main
from resexp.explain.describe import measure
from resexp.models import FAMILIES, defaults
from resexp.models.bottleneck import Bottleneck
from resexp.paper import HE_2015_MULT_ADDS, TORCHVISION_MULT_ADDS
from tests.test_imagenet_models import TORCHVISION_PARAMS
from tests.test_models import PAPER_PARAMS

def describe_json(capsys, *args) -> list[dict]:
    assert main(["describe", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _slow_beyond_50(*args):
    """ImageNet nets deeper than 50 layers take seconds each to count on a busy 2-core machine."""
    if args[-1] > 50:
        return pytest.param(*args, marks=pytest.mark.slow)
    return args if len(args) > 1 else args[0]


@pytest.mark.parametrize("depth", [_slow_beyond_50(d) for d in TORCHVISION_PARAMS])
def test_imagenet_counts_equal_torchvisions_published_ones(depth):
    """resexp's bottlenecks stride in the 3x3 conv, like torchvision's ("ResNet v1.5"): its published
    GFLOPS (multiply-adds, 3 decimals) and parameter counts are matched to the last digit given."""
    with torch.device("meta"):
        model = build_model("imagenet_resnet", depth, shortcut="B", width=64, num_classes=1000)
    counted = measure(model, (3, 224, 224))
    assert counted["parameters"] == TORCHVISION_PARAMS[depth]
    assert counted["mult_adds"] / 1e9 == pytest.approx(TORCHVISION_MULT_ADDS[depth], abs=5e-4)
    assert counted["layers"] == depth and counted["output"] == [1000]


def papers_stride(model):
    """He et al. 2015 stride a downsampling bottleneck in its first 1x1 conv, not in the 3x3 one."""
    for block in model.modules():
        if isinstance(block, Bottleneck) and block.conv2.stride == (2, 2):
            block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
    return model


@pytest.mark.parametrize("arch,depth", [_slow_beyond_50(a, d) for a, d in HE_2015_MULT_ADDS if a != "vgg"])
def test_multiply_adds_match_he_et_al_2015(arch, depth):
    """He et al. give 2-3 significant digits and do not round consistently (3.66 is printed 3.6, 7.57 is
    7.6), so within 2%. The counter counts conv and linear multiply-adds, as the paper does: BN, ReLU,
    pooling and additions are not counted (they would add about 1%)."""
    with torch.device("meta"):
        shortcut = {"shortcut": "B"} if arch == "imagenet_resnet" else {}
        model = papers_stride(build_model(arch, depth, **shortcut, width=64, num_classes=1000))
    counted = measure(model, (3, 224, 224))["mult_adds"] / 1e9
    assert counted == pytest.approx(HE_2015_MULT_ADDS[(arch, depth)], rel=0.02)


def test_cifar_counts_parameters_layers_and_parts(capsys):
    rows = describe_json(capsys, "model=plain,resnet", "depth=20", "--image-size", "32")
    for r in rows:
        arch, depth = re.fullmatch(r"([a-z_]+?)(\d+)(-A)?", r["net"]).group(1, 2)
        assert r["parameters"] == count_parameters(build_model(arch, int(depth)))
        assert round(r["parameters"] / 1e6, 2) == PAPER_PARAMS[int(depth)]
        assert r["input"] == [3, 32, 32] and r["output"] == [10]
        assert r["layers"] == int(depth)
        assert [p["part"] for p in r["parts"]] == ["stem", "stage1", "stage2", "stage3", "head"]
        for key in ("layers", "parameters", "mult_adds", "activation_bytes"):
            assert sum(p[key] for p in r["parts"]) == r[key]
        assert [p["output"] for p in r["parts"]][1:4] == [[16, 32, 32], [32, 16, 16], [64, 8, 8]]
    for depth in (20, 32, 44, 56, 110):  # the paper's Table 6 sizes, counted on the meta device
        with torch.device("meta"):
            counted = measure(build_model("resnet", depth), (3, 32, 32))
        assert round(counted["parameters"] / 1e6, 2 if depth < 100 else 1) == PAPER_PARAMS[depth]
        assert counted["layers"] == depth
    # ResNet-20 at 32x32 by hand: stem 32*32*16*27; stage 1: 6 convs of 32*32*16*144; stages 2 and 3: a
    # strided conv of 16*16*32*144 (8*8*64*288) and 5 of 16*16*32*288 (8*8*64*576); fc 64*10. Option A adds none.
    by_hand = 32 * 32 * 16 * 27 + 6 * 32 * 32 * 16 * 144 + 2 * (16 * 16 * 32 * 144 + 5 * 16 * 16 * 32 * 288) + 640
    assert rows[1]["net"] == "resnet20-A" and rows[1]["mult_adds"] == by_hand == 40_551_040
    # Activations: the plain net's float32 layer outputs (conv, BN, ReLU per layer) plus the pooled features
    # and the logits; ResNet-20's option-A shortcuts add the two padded maps where the stages change.
    per_layer = 3 * 4 * (16 * 32 * 32 * 7 + 32 * 16 * 16 * 6 + 64 * 8 * 8 * 6)
    assert rows[0]["activation_bytes"] == per_layer + 4 * (64 + 10)
    assert rows[1]["activation_bytes"] == rows[0]["activation_bytes"] + 4 * (32 * 16 * 16 + 64 * 8 * 8)


def test_table_says_multiply_adds_and_fits_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["describe", "model=imagenet_resnet", "depth=50", "--image-size", "224", "--classes", "1000"]) == 0
    out = capsys.readouterr().out
    assert "Multiply-adds (FlopCounterMode FLOPs / 2), one 3x224x224 image" in out
    assert "imagenet_resnet50-B" in out and "4.09G" in out and "25.6M" in out
    assert "imagenet_resnet50-B 22.85%" in out  # He et al. 2015, Table 3: ResNet-50 top-1, 10-crop
    assert max(map(len, out.splitlines())) <= 80


def test_imagenet_rows_carry_the_papers_top1(capsys):
    rows = [*describe_json(capsys, "model=imagenet_resnet", "model.shortcut=A", "depth=18", "--image-size", "32",
                           "--classes", "1000"),
            *describe_json(capsys, "model=imagenet_plain", "depth=18", "--image-size", "32", "--classes", "1000")]
    assert {r["net"].split()[0]: r.get("paper_top1") for r in rows} == {"imagenet_resnet18-A": 27.88,
                                                                         "imagenet_plain18": 27.94}


def test_models_pair_with_their_own_depths_and_vgg_says_its_layout(capsys):
    rows = describe_json(capsys, "model=vgg:11,resnet:8", "--image-size", "32")
    assert [r["net"] for r in rows] == ["vgg11 (cifar layout)", "resnet8-A"]
    (imagenet,) = describe_json(capsys, "model=vgg", "depth=11", "model.layout=imagenet", "--image-size", "32")
    assert imagenet["net"] == "vgg11 (imagenet layout)"


@pytest.mark.parametrize("args,message", [
    (["model=vgg:11,resnet:8", "depth=20"], "gives each model its depth; leave out depth="),
    (["model=vgg:11,resnet"], "resnet has no depth; write model:depth"),
    (["depth=21"], "depth=21 is not of the form 6n+2"),
    (["--image-size", "0"], "--image-size 0 is invalid; it must be a positive integer"),
    (["--image-size", "big"], "invalid int value: 'big'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["model=vggish"], "model=vggish"),
])
def test_bad_input_is_one_line(args, message, capsys):
    assert main(["describe", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


@pytest.mark.parametrize("depth", [16, 19])
def test_vgg_multiply_adds_match_he_et_al_2015(depth):
    """He et al. 2015 compare ResNet's FLOPs with VGG-16's 15.3 and VGG-19's 19.6 billion multiply-adds:
    the ImageNet layout (3 FC layers at 7x7), no norm layers, 224x224 and 1000 classes."""
    with torch.device("meta"):
        model = build_model("vgg", depth, layout="imagenet", width=64, num_classes=1000, norm="none")
    counted = measure(model, (3, 224, 224))["mult_adds"] / 1e9
    assert counted == pytest.approx(HE_2015_MULT_ADDS[("vgg", depth)], rel=0.02)


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_every_family_has_the_weighted_layers_its_declaration_counts(arch):
    """Found by type, at the family's default and smallest depth: projections and gates do not count,
    as the papers count depth; where a family's depth counts otherwise, its declaration says how."""
    from resexp.models.parts import weighted_layers
    family = FAMILIES[arch]
    for depth in (family.depth_for({}), family.smallest_depth()):
        with torch.device("meta"):
            model = build_model(arch, depth)
        assert len(weighted_layers(model)) == family.layers(depth, **defaults(arch)), depth


@pytest.mark.parametrize("arch,depth,options", [
    ("resnet", 20, {"shortcut": "C"}), ("highway", 20, {"shortcut": "B"}), ("vgg", 19, {"layout": "imagenet"})])
def test_projections_and_gates_are_not_layers_of_the_depth(arch, depth, options):
    from resexp.models.parts import weighted_layers
    with torch.device("meta"):
        model = build_model(arch, depth, **options)
    assert len(weighted_layers(model)) == depth


def test_describe_needs_no_dataset_files(tmp_path, capsys, monkeypatch):
    """The input shape and classes come from the dataset's config: no CIFAR or IDX files are read (none
    exist here), and an image folder's classes are counted from its sub-folders."""
    monkeypatch.chdir(tmp_path)
    cifar, fashion = describe_json(capsys, "dataset=cifar10,fashion_mnist", "depth=20")
    assert (cifar["input"], cifar["output"]) == ([3, 32, 32], [10])
    assert (fashion["input"], fashion["output"]) == ([1, 28, 28], [10])
    for name in ("ant", "bee", "cat"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
    (folder,) = describe_json(capsys, "dataset=folder", "dataset.root=imgs", "depth=20")
    assert (folder["input"], folder["output"]) == ([3, 64, 64], [3])
    assert main(["describe", "dataset=folder"]) == 2
    assert "dataset=folder needs dataset.root=DIR" in capsys.readouterr().err


def test_two_different_nets_never_share_a_label():
    from resexp.explain.nets import nets
    labelled = nets(["model=preact_resnet_bottleneck,preact_resnet", "depth=56", "model.shortcut=B"], files=False)
    assert len({label for label, _ in labelled}) == 2, [label for label, _ in labelled]
