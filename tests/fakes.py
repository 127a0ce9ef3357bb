"""Small fake datasets in the official on-disk formats: CIFAR python pickles, MNIST IDX files, image folders."""
import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are Python 2 cPickle dumps


def fake_cifar(root, name="cifar10", per_batch=24, test=20, seed=0) -> dict:
    """Write root/cifar-10-batches-py/ (5 train batches) or root/cifar-100-python/ with random
    pixels in the exact official layout; returns the arrays written, for checking the reader."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    folder = Path(root) / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    train_names = [f"data_batch_{i}" for i in range(1, 6)] if name == "cifar10" else ["train"]
    written = {}
    for file, n in [(f, per_batch) for f in train_names] + [("test_batch" if name == "cifar10" else "test", test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, n).tolist()
        batch = {b"batch_label": file.encode(), b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
        if name == "cifar10":
            batch[b"labels"] = labels
        else:
            batch[b"fine_labels"], batch[b"coarse_labels"] = labels, [lab // 5 for lab in labels]
        _dump(folder / file, batch)
        written[file] = (data, labels)
    if name == "cifar10":
        _dump(folder / "batches.meta", {b"num_cases_per_batch": per_batch, b"num_vis": 3072,
                                        b"label_names": [f"class{i}".encode() for i in range(10)]})
    else:
        _dump(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                                b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return written


def tar_gz(source_root, folder_name: str, archive: Path) -> Path:
    """Pack source_root/folder_name as the official archives are packed (one top-level folder)."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(Path(source_root) / folder_name, arcname=folder_name)
    return archive


def fake_image_folder(root, classes=("ant", "bee", "cat"), per_class=5, seed=0) -> list[Path]:
    """Class sub-folders of real PNG and JPEG files of varied sizes and modes (RGB, L, RGBA)."""
    rng = np.random.default_rng(seed)
    paths = []
    for c, name in enumerate(classes):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = int(rng.integers(12, 40)), int(rng.integers(12, 40))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            pixels[..., c % 3] = 255 - (pixels[..., c % 3] // 4)  # a colour cast per class
            mode = ("RGB", "L", "RGBA")[i % 3]
            img = Image.fromarray(pixels).convert(mode)
            path = folder / (f"{i}.png" if i % 2 == 0 or mode == "RGBA" else f"{i}.jpg")
            img.save(path)
            paths.append(path)
    return paths


IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes: magic 0x0000 08 <ndim>, big-endian sizes, then the uint8 values."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_idx(root, train=24, test=16, side=28, gz=True, seed=0) -> dict:
    """Write the four (Fashion-)MNIST files into root, gzipped as published or raw as after gunzip,
    with random pixels and labels; returns {split: (images N x side x side, labels)}."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n in (("train", train), ("test", test)):
        images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for name, array in zip(IDX_FILES[split], (images, labels)):
            data = idx_bytes(array)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
        written[split] = (images, labels)
    return written
