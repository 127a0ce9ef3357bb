"""Fashion-MNIST (Xiao et al. 2017) and MNIST: four IDX files each, 28x28 grey images, one channel.

`dataset.root` is the folder holding the four files, each gzipped (as published) or not. Every file
is checked; a missing or damaged one is an error naming it and the fix, never a partial dataset.
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import UserError
from .dataset import Dataset
from .download import download
from .idx import IMAGES, LABELS, read_idx

SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FILES = [name for pair in SPLITS.values() for name in pair]

# Label i is CLASSES[name][i]: Xiao et al. 2017, Table 1 (Fashion-MNIST); the digits (MNIST).
CLASSES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "mnist": tuple(str(digit) for digit in range(10)),
}
# What a user without the files can do, besides dataset.download=true.
INSTALL = {"fashion_mnist": "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or "}


def _hint(cfg) -> str:
    return (f"{INSTALL.get(cfg.name, '')}put the four official files from {cfg.url} into dataset.root={cfg.root}, "
            "or add dataset.download=true")


def _find(folder: Path, name: str) -> Path | None:
    """The file as published (name.gz) or unpacked (name), whichever is there."""
    return next((p for p in (folder / f"{name}.gz", folder / name) if p.is_file()), None)


def check_files(cfg) -> None:
    """One line naming the first missing file and how to get it (skipped when download=true)."""
    if cfg.download:
        return
    root = Path(cfg.root)
    missing = next((name for name in FILES if _find(root, name) is None), None)
    if missing:
        raise UserError(f"{root / missing}.gz not found: {_hint(cfg)}")


def _download_missing(cfg) -> None:
    root = Path(cfg.root)
    for name in FILES:
        if _find(root, name) is None:
            download(cfg.url + f"{name}.gz", cfg.md5[name], root / f"{name}.gz",
                     hint=f"download it yourself into dataset.root={root}")


def _read_split(root: Path, split: str, cfg):
    images_name, labels_name = SPLITS[split]
    hint = f"delete it and {_hint(cfg)}"
    images_path, labels_path = _find(root, images_name), _find(root, labels_name)
    images, labels = read_idx(images_path, IMAGES, hint), read_idx(labels_path, LABELS, hint)
    if len(images) != len(labels):
        raise UserError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
                        f"they must match: {hint}")
    classes = len(CLASSES[cfg.name])
    if len(labels) and labels.max() >= classes:
        raise UserError(f"{labels_path} holds label {int(labels.max())}; {cfg.name} labels are 0 to {classes - 1}: {hint}")
    return images.unsqueeze(1), labels.long()


def load_mnist(cfg):
    """((train_x, train_y), (test_x, test_y)), images uint8 N x 1 x side x side (dataset.image_size)."""
    if cfg.download:
        _download_missing(cfg)
    check_files(cfg)
    root = Path(cfg.root)
    train, test = _read_split(root, "train", cfg), _read_split(root, "test", cfg)
    if train[0].shape[1:] != test[0].shape[1:]:
        raise UserError(f"the training images are {tuple(train[0].shape[2:])} pixels but the test images "
                        f"{tuple(test[0].shape[2:])} in dataset.root={root}; both splits must be one size")
    if cfg.image_size != train[0].shape[-1]:
        train, test = [(_resize(x, cfg.image_size), y) for x, y in (train, test)]
    return train, test


def _resize(images, side: int):
    """uint8 images scaled to side x side; shrinking averages each output pixel's area (28 -> 14: 2x2 means)."""
    return F.interpolate(images.float(), size=(side, side), mode="area").round().to(torch.uint8)


MNIST = Dataset(load_mnist, lambda cfg: (1, cfg.image_size), lambda cfg, files: check_files(cfg) if files else None)
