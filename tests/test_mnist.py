"""Fashion-MNIST and MNIST from the official IDX files: reading, errors naming the file, download + MD5,
one-channel nets, the presets on real-format files, a CLI run read back from TensorBoard."""
import gzip
import hashlib
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resexp.cli import main
from resexp.config import first_dir, group_options, validate
from resexp.data import load_dataset
from resexp.data.mnist import CLASSES, load_mnist
from resexp.errors import UserError
from resexp.models import model_from_config
from resexp.paper import A, reference
from resexp.train.loop import train
from tests.fakes import IDX_FILES, fake_idx, idx_bytes
from tests.test_presets import SHRINK, compose_preset, sweep_jobs

NAMES = ["fashion_mnist", "mnist"]
PRESETS = [p for p in group_options("experiment") if p.startswith("fashion")] + ["activations"]


def mnist_cfg(compose_cfg, root, *overrides, name="fashion_mnist"):
    return compose_cfg(f"dataset={name}", f"dataset.root={root}", *overrides, tiny=False).dataset


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
@pytest.mark.parametrize("name", NAMES)
def test_reads_the_idx_files_back_exactly(name, gz, tmp_path, compose_cfg):
    written = fake_idx(tmp_path, gz=gz)
    (x, y), (xt, yt) = load_mnist(mnist_cfg(compose_cfg, tmp_path, name=name))
    assert x.dtype == torch.uint8 and x.shape == (24, 1, 28, 28) and y.dtype == torch.int64
    assert torch.equal(x[:, 0], torch.from_numpy(written["train"][0]))  # row by row, as stored
    assert torch.equal(xt[:, 0], torch.from_numpy(written["test"][0]))
    assert y.tolist() == written["train"][1].tolist() and yt.tolist() == written["test"][1].tolist()
    assert len(CLASSES[name]) == 10


def test_downscaling_averages_each_2x2_block(tmp_path, compose_cfg):
    written = fake_idx(tmp_path)
    (x, _), (xt, _) = load_mnist(mnist_cfg(compose_cfg, tmp_path, "dataset.image_size=14"))
    assert x.shape == (24, 1, 14, 14) and xt.shape == (16, 1, 14, 14)
    block = written["train"][0][3, 4:6, 10:12].astype(float)
    assert x[3, 0, 2, 5].item() == round(block.mean())


def test_the_default_root_is_the_debian_packages_folder_when_installed(tmp_path, compose_cfg):
    assert first_dir(str(tmp_path / "absent"), "data/fashion-mnist") == "data/fashion-mnist"
    assert first_dir(str(tmp_path), "data/fashion-mnist") == str(tmp_path)
    cfg = compose_cfg("dataset=fashion_mnist", tiny=False).dataset
    assert cfg.root in ("/usr/share/datasets/fashion-mnist", "data/fashion-mnist")
    assert compose_cfg("dataset=mnist", tiny=False).dataset.root == "data/mnist"


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "dataset=fashion_mnist", "dataset.root=nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nowhere/train-images-idx3-ubyte.gz not found" in err
    assert "apt-get install dataset-fashion-mnist" in err and "dataset.download=true" in err
    assert "fashion-mnist.s3-website.eu-central-1.amazonaws.com" in err
    assert main(["train", "dataset=mnist", "dataset.root=nowhere"]) == 2
    assert "ossci-datasets" in capsys.readouterr().err
    assert main(["train", "dataset=fashion_mnist", "dataset.image_size=0"]) == 2
    assert "dataset.image_size=0 is invalid; it must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _write(path, data: bytes):
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


IMAGES, LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
DAMAGES = [  # (file, damage to its bytes, the line's text)
    (IMAGES, lambda p: p.unlink(), "train-images-idx3-ubyte.gz not found"),
    (IMAGES, lambda p: p.write_bytes(p.read_bytes()[:500]), "train-images-idx3-ubyte.gz is truncated or corrupt"),
    (IMAGES, lambda p: p.write_bytes(b"not gzip at all"), "train-images-idx3-ubyte.gz is truncated or corrupt"),
    (IMAGES, lambda p: _write(p, gzip.decompress(p.read_bytes())[:-5]), "is truncated: 18827 bytes for a 24 x 28 x 28 array (18832 bytes)"),
    (IMAGES, lambda p: _write(p, gzip.decompress(p.read_bytes()) + b"x"), "is longer than its header says"),
    (IMAGES, lambda p: _write(p, gzip.decompress(p.read_bytes())[:10]), "is truncated: its header ends after 10 bytes"),
    (IMAGES, lambda p: _write(p, idx_bytes(np.zeros(24, np.uint8))),
     "is not an IDX file of images (magic number 0x00000801, expected 0x00000803)"),
    (LABELS, lambda p: _write(p, b""), "is not an IDX file of labels (magic number nothing, expected 0x00000801)"),
    (LABELS, lambda p: _write(p, idx_bytes(np.zeros(23, np.uint8))),
     "train-labels-idx1-ubyte.gz holds 23 labels; they must match"),
    (LABELS, lambda p: _write(p, idx_bytes(np.full(24, 10, np.uint8))),
     "train-labels-idx1-ubyte.gz holds label 10; fashion_mnist labels are 0 to 9"),
]


@pytest.mark.parametrize("file,damage,message", DAMAGES, ids=range(len(DAMAGES)))
def test_a_damaged_file_is_one_line_naming_it(file, damage, message, tmp_path, compose_cfg):
    fake_idx(tmp_path)
    damage(tmp_path / file)
    cfg = compose_cfg("dataset=fashion_mnist", f"dataset.root={tmp_path}", tiny=False)
    with pytest.raises(UserError, match=file.replace(".", r"\.")) as e:
        validate(cfg)  # the missing file stops here, before any work
        load_mnist(cfg.dataset)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert "dataset.download=true" in str(e.value)


def test_download_checks_each_md5(tmp_path, compose_cfg):
    fake_idx(tmp_path / "src")
    url = (tmp_path / "src").as_uri() + "/"
    md5 = {name: hashlib.md5((tmp_path / "src" / f"{name}.gz").read_bytes()).hexdigest()
           for pair in IDX_FILES.values() for name in pair}
    sums = [f"dataset.md5.{name}={value}" for name, value in md5.items()]
    bad = [*sums[:3], "dataset.md5.t10k-labels-idx1-ubyte=" + "0" * 32]
    with pytest.raises(UserError, match=f"{url}t10k-labels-idx1-ubyte.gz has MD5 {md5['t10k-labels-idx1-ubyte']}, "
                                        "expected 0+: the download is incomplete or corrupt"):
        load_mnist(mnist_cfg(compose_cfg, tmp_path / "bad", "dataset.download=true", f"dataset.url={url}", *bad))
    assert not (tmp_path / "bad" / "t10k-labels-idx1-ubyte.gz").exists()  # nothing kept from a bad file

    (tmp_path / "data").mkdir()
    (tmp_path / "src" / "t10k-images-idx3-ubyte.gz").rename(tmp_path / "data" / "t10k-images-idx3-ubyte.gz")
    cfg = mnist_cfg(compose_cfg, tmp_path / "data", "dataset.download=true", f"dataset.url={url}", *sums)
    (x, _), (xt, _) = load_mnist(cfg)  # three fetched, the one already there kept
    assert x.shape == (24, 1, 28, 28) and xt.shape == (16, 1, 28, 28)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(f"{n}.gz" for n in md5)


def test_val_split_and_normalization_are_the_shared_ones(tmp_path, compose_cfg):
    fake_idx(tmp_path)
    cfg = mnist_cfg(compose_cfg, tmp_path, "dataset.val_size=8", "dataset.normalize=per_pixel")
    data = load_dataset(cfg, "cpu")
    assert len(data.train_y) == 16 and len(data.val_y) == 8 and data.in_channels == 1 and data.num_classes == 10
    assert data.mean.shape == (1, 28, 28) and torch.allclose(data.mean, data.train_x.float().mean(0))
    with pytest.raises(UserError, match="dataset.val_size=24 leaves no training images"):
        load_dataset(mnist_cfg(compose_cfg, tmp_path, "dataset.val_size=24"), "cpu")


@pytest.mark.parametrize("model", ["plain", "resnet", "resnet_bottleneck"])
def test_nets_take_one_channel_28x28_images(model, tmp_path, compose_cfg):
    fake_idx(tmp_path)
    cfg = compose_cfg("dataset=fashion_mnist", f"dataset.root={tmp_path}", f"model={model}", "model.width=4",
                      f"depth={11 if model == 'resnet_bottleneck' else 8}", tiny=False)
    data = load_dataset(cfg.dataset, "cpu")
    net = model_from_config(cfg.model, cfg.depth, data.num_classes, data.in_channels)
    assert net.conv1.in_channels == 1
    x, y = data.train_batch(torch.arange(8), torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 28, 28) and net(x).shape == (8, 10)


def test_no_cifar_numbers_beside_fashion_mnist_runs():
    assert reference("fashion_mnist", "resnet", 20, A) == {} and reference("mnist", "plain", 56) == {}
    assert reference("cifar10", "resnet", 20, A)["paper_test_error"] == 8.75


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    fake_idx(root, train=24, test=8)
    return root


def test_presets_are_what_readme_says():
    assert [j[0] for j in sweep_jobs("fashion_fig6")] == [
        f"net={n}" for n in "plain20 plain32 plain44 plain56 resnet20 resnet32 resnet44 resnet56 resnet110".split()]
    fig6 = compose_preset("fashion_fig6", "net=resnet110")
    assert fig6.dataset.name == "fashion_mnist" and fig6.dataset.val_size == 5000
    assert (fig6.trainer.steps, list(fig6.schedule.milestones), fig6.warmup.min_depth) == (32000, [16000, 24000], 110)
    assert [j[0] for j in sweep_jobs("activations")] == [
        f"model.activation={a}" for a in "relu leaky_relu elu gelu silu tanh sigmoid prelu learned_swish".split()]
    assert compose_preset("activations").depth == 20
    assert sweep_jobs("fashion_quick") == [[f"model={m}", f"depth={d}"] for m in ("plain", "resnet") for d in (8, 20, 56)]
    quick = compose_preset("fashion_quick")
    assert (quick.dataset.image_size, quick.trainer.steps, quick.trainer.batch_size) == (14, 800, 32)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_every_preset_runs(preset, idx_root, tmp_path):
    for i, job in enumerate(sweep_jobs(preset)):
        cfg = compose_preset(preset, f"dataset.root={idx_root}", *SHRINK, "dataset.image_size=8", *job)
        validate(cfg)
        run_dir = tmp_path / str(i)
        run_dir.mkdir()
        result = train(cfg, run_dir)
        assert result["steps"] == 2 and "final_val_error" in result and "paper_test_error" not in result


def test_cli_run_logs_val_error_and_no_paper_column(idx_root, tmp_path, resexp_cli):
    result = resexp_cli("train", "-m", "+experiment=fashion_fig6", f"dataset.root={idx_root}", *SHRINK,
                        "trainer.steps=4", "net=resnet20", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    run = tmp_path / "sweep/0_resnet20-A"
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and "paper_test_error" not in status
    assert "paper" not in result.stdout  # the summary has no CIFAR-10 column beside Fashion-MNIST runs
    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    val = events.Scalars("val/error")
    assert [e.step for e in val] == [2, 4] and val[-1].value == pytest.approx(status["final_val_error"])
    assert OmegaConf.load(run / "config.yaml").dataset.name == "fashion_mnist"
