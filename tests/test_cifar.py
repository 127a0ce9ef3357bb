"""CIFAR-10/100 from the official pickle layout: reading, errors naming the file, download + MD5, a CLI run."""
import hashlib
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resexp.cli import main
from resexp.data import load_dataset
from resexp.data.cifar import load_cifar
from resexp.errors import UserError
from tests.fakes import fake_cifar, tar_gz


def cifar_cfg(compose_cfg, name, root, *overrides):
    return compose_cfg(f"dataset={name}", f"dataset.root={root}", *overrides, tiny=False).dataset


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_reads_the_official_layout_exactly(name, tmp_path, compose_cfg):
    written = fake_cifar(tmp_path, name)
    (x, y), (xt, yt) = load_cifar(cifar_cfg(compose_cfg, name, tmp_path))
    train_files = [f for f in written if f not in ("test_batch", "test")]
    assert x.dtype == torch.uint8 and x.shape == (24 * len(train_files), 3, 32, 32) and y.dtype == torch.int64
    assert xt.shape == (20, 3, 32, 32)
    first_data, first_labels = written[train_files[0]]
    # Row layout: 1024 red pixels row by row, then green, then blue.
    assert torch.equal(x[0, 0].flatten(), torch.from_numpy(first_data[0, :1024]))
    assert torch.equal(x[0, 2, 31], torch.from_numpy(first_data[0, 3072 - 32:]))
    assert y[:24].tolist() == first_labels
    assert yt.tolist() == written["test_batch" if name == "cifar10" else "test"][1]


def test_missing_files_say_which_file_to_put_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "dataset=cifar10", "dataset.root=nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nowhere/cifar-10-batches-py/data_batch_1 not found" in err
    assert "cifar-10-python.tar.gz" in err and "dataset.download=true" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_bytes(p.read_bytes()[:5000]), "data_batch_3 is truncated or corrupt"),
    (lambda p: p.write_bytes(b"\x00" * 100), "data_batch_3 is truncated or corrupt"),
    (lambda p: p.write_bytes(__import__("pickle").dumps([1, 2])), "data_batch_3 is not a CIFAR batch"),
    (lambda p: p.write_bytes(__import__("pickle").dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4})),
     "data_batch_3: b'data' is not a uint8 array"),
    (lambda p: p.write_bytes(__import__("pickle").dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]})),
     "data_batch_3: b'labels' must hold 4 labels in [0, 10)"),
    (lambda p: p.write_bytes(__import__("pickle").dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]})),
     "must hold 1 labels in [0, 10)"),
    (lambda p: p.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR."), "data_batch_3 is truncated or corrupt"),
])
def test_a_damaged_file_is_an_error_naming_it(damage, message, tmp_path, compose_cfg):
    fake_cifar(tmp_path)
    damage(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(UserError, match="data_batch_3") as e:
        load_cifar(cifar_cfg(compose_cfg, "cifar10", tmp_path))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_download_checks_the_md5_then_extracts(tmp_path, compose_cfg):
    fake_cifar(tmp_path / "src")
    archive = tar_gz(tmp_path / "src", "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    url = archive.as_uri()

    with pytest.raises(UserError, match=f"{url} has MD5 {md5}, expected 0+: the download is incomplete or corrupt"):
        load_cifar(cifar_cfg(compose_cfg, "cifar10", tmp_path / "bad_md5", "dataset.download=true", f"dataset.url={url}",
                             "dataset.md5=" + "0" * 32))
    assert not any((tmp_path / "bad_md5").rglob("data_batch_*"))  # nothing extracted from a bad archive

    root = tmp_path / "data"
    cfg = cifar_cfg(compose_cfg, "cifar10", root, "dataset.download=true", f"dataset.url={url}", f"dataset.md5={md5}")
    (x, _), (xt, _) = load_cifar(cfg)
    assert x.shape == (120, 3, 32, 32) and xt.shape == (20, 3, 32, 32)
    assert (root / "cifar-10-python.tar.gz").exists() and (root / "cifar-10-batches-py" / "test_batch").exists()


def test_download_failures_are_one_line(tmp_path, compose_cfg):
    fake_cifar(tmp_path / "src")
    archive = tar_gz(tmp_path / "src", "cifar-10-batches-py", tmp_path / "full.tar.gz")
    cut = tmp_path / "cifar-10-python.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    md5 = hashlib.md5(cut.read_bytes()).hexdigest()
    cfg = cifar_cfg(compose_cfg, "cifar10", tmp_path / "a", "dataset.download=true", f"dataset.url={cut.as_uri()}",
                    f"dataset.md5={md5}")
    with pytest.raises(UserError, match=r"a/cifar-10-python.tar.gz is truncated or corrupt .*delete it"):
        load_cifar(cfg)
    missing = (tmp_path / "absent.tar.gz").as_uri()
    cfg = cifar_cfg(compose_cfg, "cifar10", tmp_path / "b", "dataset.download=true", f"dataset.url={missing}")
    with pytest.raises(UserError, match=f"could not download {missing} .*extract it into dataset.root="):
        load_cifar(cfg)


def test_val_split_and_per_pixel_mean(tmp_path, compose_cfg):
    fake_cifar(tmp_path)
    cfg = cifar_cfg(compose_cfg, "cifar10", tmp_path, "dataset.val_size=20", "dataset.normalize=per_pixel")
    data = load_dataset(cfg, "cpu")
    assert len(data.train_y) == 100 and len(data.val_y) == 20 and len(data.test_y) == 20
    assert data.mean.shape == (3, 32, 32) and data.std.shape == (1, 1, 1)
    assert torch.allclose(data.mean, data.train_x.float().mean(0))  # from the training split only
    again = load_dataset(cfg, "cpu")
    assert torch.equal(data.val_x, again.val_x)  # the split is seeded by dataset.split_seed
    other = load_dataset(cifar_cfg(compose_cfg, "cifar10", tmp_path, "dataset.val_size=20", "dataset.split_seed=1"), "cpu")
    assert not torch.equal(data.val_y, other.val_y) or not torch.equal(data.val_x, other.val_x)
    with pytest.raises(UserError, match="dataset.val_size=120 leaves no training images"):
        load_dataset(cifar_cfg(compose_cfg, "cifar10", tmp_path, "dataset.val_size=120"), "cpu")


def test_cli_trains_on_cifar_with_val_error_and_the_papers_number(tmp_path, resexp_cli):
    fake_cifar(tmp_path / "data")
    result = resexp_cli("train", "dataset=cifar10", "dataset.root=data", "depth=20", "model.width=4", "device=cpu",
                        "trainer.steps=4", "trainer.batch_size=32", "trainer.log_every=2", "trainer.eval_every=2",
                        "dataset.val_size=20", "dataset.normalize=per_pixel", "dataset.augment.flip=true",
                        "dataset.augment.crop_padding=4", "hydra.run.dir=run")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads((tmp_path / "run/status.json").read_text())
    assert status["status"] == "finished" and status["steps"] == 4
    assert status["paper_test_error"] == 8.75 and "Table 6" in status["paper_source"]
    assert status["paper_statistic"] == "one run" and status["paper_dataset"] == "cifar10"
    assert 0 <= status["final_val_error"] <= 100
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all("val_error" in r and "val_loss" in r for r in rows)
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0}).Reload()
    assert [e.step for e in events.Scalars("val/error")] == [2, 4]  # x axis: the iteration
    assert OmegaConf.load(tmp_path / "run/config.yaml").dataset.name == "cifar10"
