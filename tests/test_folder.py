"""dataset=folder: real PNG and JPEG files in class sub-folders, decoded once, cached, errors naming the file."""
import json
import os

import pytest
import torch

from resexp.cli import main
from resexp.data import folder as folder_module
from resexp.data import load_dataset
from resexp.data.folder import load_folder
from resexp.errors import UserError
from tests.fakes import fake_image_folder


def folder_cfg(compose_cfg, root, *overrides):
    return compose_cfg("dataset=folder", f"dataset.root={root}", "dataset.image_size=16", *overrides, tiny=False).dataset


def test_class_folders_become_labels_and_a_seeded_stratified_split(tmp_path, compose_cfg):
    fake_image_folder(tmp_path, per_class=5)
    cfg = folder_cfg(compose_cfg, tmp_path, "dataset.test_fraction=0.4")
    (x, y), (xt, yt) = load_folder(cfg)
    assert x.dtype == torch.uint8 and x.shape[1:] == (3, 16, 16) and xt.shape[1:] == (3, 16, 16)
    assert torch.bincount(y).tolist() == [3, 3, 3] and torch.bincount(yt).tolist() == [2, 2, 2]  # per class
    (x2, y2), (xt2, _) = load_folder(cfg)
    assert torch.equal(x, x2) and torch.equal(xt, xt2)  # same seed, same split
    (x3, _), _ = load_folder(folder_cfg(compose_cfg, tmp_path, "dataset.test_fraction=0.4", "dataset.split_seed=1"))
    assert not torch.equal(x, x3)
    data = load_dataset(cfg, "cpu")
    assert data.num_classes == 3 and data.in_channels == 3


def test_train_and_test_sub_folders_are_used_as_given(tmp_path, compose_cfg):
    fake_image_folder(tmp_path / "train", per_class=4)
    fake_image_folder(tmp_path / "test", classes=("ant", "cat"), per_class=2, seed=1)
    (x, y), (xt, yt) = load_folder(folder_cfg(compose_cfg, tmp_path))
    assert len(y) == 12 and yt.tolist() == [0, 0, 2, 2]  # labels follow train/'s sorted class names


def test_decoding_resizes_the_shorter_side_and_centre_crops(tmp_path):
    from PIL import Image
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 6, 20))  # a blue left strip, cropped away by the centre crop
    img.save(tmp_path / "wide.png")
    pixels = folder_module.decode(tmp_path / "wide.png", 10)
    assert pixels.shape == (3, 10, 10) and pixels[0].min() == 255 and pixels[2].max() == 0


def test_decoded_images_are_cached_and_rebuilt_when_the_folder_changes(tmp_path, compose_cfg, monkeypatch):
    paths = fake_image_folder(tmp_path, per_class=4)
    cfg = folder_cfg(compose_cfg, tmp_path)
    (x, _), (xt, _) = load_folder(cfg)
    assert (tmp_path / ".resexp-cache-16px.pt").exists()
    calls = []
    real_decode = folder_module.decode
    monkeypatch.setattr(folder_module, "decode", lambda *a: calls.append(a) or real_decode(*a))
    (x2, _), _ = load_folder(cfg)
    assert calls == [] and torch.equal(x, x2)  # second load: from the cache, nothing decoded
    paths[0].unlink()
    (x3, _), (xt3, _) = load_folder(cfg)
    assert len(calls) == 11 and len(x3) + len(xt3) == len(x) + len(xt) - 1
    stat = paths[1].stat()
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "modified"
    load_folder(cfg)
    assert len(calls) == 22


@pytest.mark.parametrize("content", [b"not an image at all", None])
def test_an_unreadable_image_is_named(content, tmp_path, compose_cfg):
    paths = fake_image_folder(tmp_path, per_class=3)
    bad = next(p for p in paths if p.suffix == ".jpg")
    bad.write_bytes(content if content is not None else bad.read_bytes()[:200])  # garbage, or a truncated JPEG
    with pytest.raises(UserError, match=f"cannot read image {bad} .*fix or remove the file"):
        load_folder(folder_cfg(compose_cfg, tmp_path))


def test_folder_layout_errors(tmp_path, compose_cfg):
    (tmp_path / "only").mkdir()
    with pytest.raises(UserError, match="holds 1 class sub-folder"):
        fake_image_folder(tmp_path / "one", classes=("a",))
        load_folder(folder_cfg(compose_cfg, tmp_path / "one"))
    fake_image_folder(tmp_path / "two", classes=("a", "b"))
    (tmp_path / "two" / "empty").mkdir()
    with pytest.raises(UserError, match="two/empty holds no images"):
        load_folder(folder_cfg(compose_cfg, tmp_path / "two"))


def test_cli_errors_and_a_run_on_a_folder(tmp_path, monkeypatch, capsys, resexp_cli):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "dataset=folder"]) == 2
    assert "dataset=folder needs dataset.root=DIR" in capsys.readouterr().err
    assert main(["train", "dataset=folder", "dataset.root=missing"]) == 2
    assert "dataset.root=missing is not a directory" in capsys.readouterr().err
    fake_image_folder(tmp_path / "imgs", per_class=6)
    result = resexp_cli("train", "dataset=folder", "dataset.root=imgs", "dataset.image_size=16", "depth=8",
                        "model.width=4", "trainer.steps=3", "trainer.batch_size=4", "device=cpu", "hydra.run.dir=run")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads((tmp_path / "run/status.json").read_text())
    assert status["status"] == "finished" and "paper_test_error" not in status


@pytest.mark.parametrize("layout", ["one-per-class", "empty-test"])
def test_a_folder_with_no_test_images_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, layout):
    from tests.conftest import refused
    monkeypatch.chdir(tmp_path)
    if layout == "one-per-class":
        fake_image_folder(tmp_path / "imgs", per_class=1)
        says = "dataset.test_fraction=0.2 of 1 image(s) per class leaves no test images"
    else:
        fake_image_folder(tmp_path / "imgs/train", per_class=2)
        for name in ("ant", "bee", "cat"):
            (tmp_path / "imgs/test" / name).mkdir(parents=True)
        says = "imgs/test holds no images"
    args = ["dataset=folder", "dataset.root=imgs", "dataset.image_size=16", "depth=8", "device=cpu"]
    assert says in refused(capsys, "train", *args)
    assert main(["train", "-m", *args, "seed=0,1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 of 2 jobs of the sweep are invalid") and says in err, err
    assert not (tmp_path / "runs").exists()
