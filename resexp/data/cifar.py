"""CIFAR-10 and CIFAR-100 from the official "python version" archives (Krizhevsky 2009).

Each batch file is a pickled dict: b'data' a uint8 array N x 3072 (1024 red, then green, then blue
pixels, rows top to bottom) and b'labels' (CIFAR-10) or b'fine_labels' (CIFAR-100). Every file is
checked; a missing, truncated or malformed one is an error naming it, never a partial dataset.
"""
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .dataset import Dataset
from .download import fetch

SIDE = 32  # pixels per side of every CIFAR image


@dataclass(frozen=True)
class Layout:
    folder: str          # what the archive extracts to, inside dataset.root
    train: tuple         # batch files of the training split
    test: tuple
    meta: str
    label_key: bytes
    names_key: bytes     # class names in the meta file


LAYOUTS = {
    "cifar10": Layout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                      "batches.meta", b"labels", b"label_names"),
    "cifar100": Layout("cifar-100-python", ("train",), ("test",), "meta", b"fine_labels", b"fine_label_names"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a batch file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"),
               ("_codecs", "encode")}  # how Python 3 writes bytes at pickle protocol 2

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _files(cfg) -> list[Path]:
    layout = LAYOUTS[cfg.name]
    folder = Path(cfg.root) / layout.folder
    return [folder / name for name in (*layout.train, *layout.test, layout.meta)]


def check_files(cfg) -> None:
    """One line naming the first missing file and how to get it (skipped when download=true)."""
    if cfg.download:
        return
    missing = [p for p in _files(cfg) if not p.is_file()]
    if missing:
        layout = LAYOUTS[cfg.name]
        raise UserError(f"{missing[0]} not found: extract the official archive {cfg.url} into dataset.root="
                        f"{cfg.root} (it holds {layout.folder}/), or add dataset.download=true")


def _unpickle(path: Path) -> dict:
    hint = "delete it and extract the official archive again (or add dataset.download=true)"
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # truncation and corruption surface as many types: EOFError, UnpicklingError, ...
        raise UserError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); {hint}") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path} is not a CIFAR batch (a pickled dict); {hint}")
    return batch


def _read_batch(path: Path, label_key: bytes, num_classes: int):
    batch = _unpickle(path)
    data, labels = batch.get(b"data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE ** 2:
        raise UserError(f"{path}: b'data' is not a uint8 array of N x {3 * SIDE ** 2} pixels; the file is damaged")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(data),) or (len(labels) and not 0 <= labels.min() <= labels.max() < num_classes):
        raise UserError(f"{path}: {label_key!r} must hold {len(data)} labels in [0, {num_classes}); the file is damaged")
    return torch.from_numpy(data.reshape(-1, 3, SIDE, SIDE).copy()), torch.from_numpy(labels)


def _read_split(folder: Path, names, layout: Layout, num_classes: int):
    parts = [_read_batch(folder / name, layout.label_key, num_classes) for name in names]
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def load_cifar(cfg):
    """((train_x, train_y), (test_x, test_y)), images uint8 N x 3 x 32 x 32."""
    layout = LAYOUTS[cfg.name]
    root = Path(cfg.root)
    if cfg.download and not all(p.is_file() for p in _files(cfg)):
        fetch(cfg.url, cfg.md5, root, hint=f"download it yourself and extract it into dataset.root={root}")
        if not all(p.is_file() for p in _files(cfg)):
            missing = next(p for p in _files(cfg) if not p.is_file())
            raise UserError(f"{missing} is missing after extracting {cfg.url}; the archive is not the official one")
    check_files(cfg)
    folder = root / layout.folder
    names = _unpickle(folder / layout.meta).get(layout.names_key)
    if not isinstance(names, list) or len(names) != cfg.num_classes:
        raise UserError(f"{folder / layout.meta}: expected {cfg.num_classes} class names under {layout.names_key!r}; "
                        "the file is damaged or belongs to another dataset")
    train = _read_split(folder, layout.train, layout, cfg.num_classes)
    test = _read_split(folder, layout.test, layout, cfg.num_classes)
    return train, test


CIFAR = Dataset(load_cifar, lambda cfg: (3, 32), lambda cfg, files: check_files(cfg) if files else None)
