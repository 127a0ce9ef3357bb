"""Your own images: a directory of class sub-folders (Caltech-101 style), decoded once with Pillow.

    root/cat/001.jpg, root/dog/xyz.png, ...                  -> split by dataset.test_fraction (seeded)
    root/train/cat/..., root/test/cat/...                    -> those splits as they are

Class labels are the sorted sub-folder names. Every image is converted to RGB, its shorter side
resized to dataset.image_size and centre-cropped to a square. The decoded tensors are cached in
root/.resexp-cache-<size>px.pt and rebuilt when any image is added, removed or modified.
"""
import hashlib
import json
from pathlib import Path

import torch
from PIL import Image

from ..errors import UserError
from ..console import console
from .dataset import Dataset

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
CACHE_VERSION = 1  # bump when the decoding changes, so old caches are rebuilt


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(split_dir: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(image, label) for every image file under split_dir/<class>/, in a fixed order."""
    files = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if class_dir.is_dir():
            files += [(p, label) for p in sorted(class_dir.rglob("*"))
                      if p.suffix.lower() in EXTENSIONS and p.is_file() and not p.name.startswith(".")]
    return files


def _train_dir(root: Path) -> Path:
    if not root.is_dir():
        raise UserError(f"dataset.root={root} is not a directory; point it at a folder of class sub-folders")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    return root / "train" if presplit else root


def class_names(root) -> list[str]:
    """The class sub-folders of an image folder (of its train/ where it has train/ and test/), sorted."""
    train_dir = _train_dir(Path(root))
    classes = [p.name for p in _visible_dirs(train_dir)]
    if len(classes) < 2:
        raise UserError(f"{train_dir} holds {len(classes)} class sub-folder(s); it needs at least 2 "
                        "(one folder of images per class)")
    return classes


def _layout(root: Path):
    """(classes, train files, test files or None when the split is ours to make)."""
    train_dir = _train_dir(root)
    presplit = train_dir != root
    classes = class_names(root)
    train = _scan(train_dir, classes)
    for label, name in enumerate(classes):
        if not any(lab == label for _, lab in train):
            raise UserError(f"{train_dir / name} holds no images ({', '.join(sorted(EXTENSIONS))}); "
                            "add some or remove the folder")
    if not presplit:
        return classes, train, None
    unknown = sorted(set(p.name for p in _visible_dirs(root / "test")) - set(classes))
    if unknown:
        raise UserError(f"{root / 'test' / unknown[0]} is a class with no folder in {train_dir}; "
                        "train/ and test/ must have the same class sub-folders")
    return classes, train, _scan(root / "test", classes)


def check_files(cfg) -> None:
    """The folder's layout (class sub-folders, each with images) and a test split that is not empty, from
    the file names alone: before any image is decoded, and for every job of a sweep."""
    root = Path(cfg.root)
    _, train, test = _layout(root)
    if test is None:
        per_class = torch.bincount(torch.tensor([label for _, label in train]))
        if not sum(_test_count(cfg.test_fraction, int(n)) for n in per_class):
            raise UserError(f"dataset.root={root}: dataset.test_fraction={cfg.test_fraction} of {int(per_class.min())} "
                            "image(s) per class leaves no test images (each class keeps one for training); add "
                            "images, raise dataset.test_fraction, or give root/train/ and root/test/ folders")
    elif not test:
        raise UserError(f"{root / 'test'} holds no images; add some to its class sub-folders")


def _test_count(test_fraction: float, images: int) -> int:
    """How many of a class's images go to test: a seeded test_fraction, at least one staying in train."""
    return min(round(test_fraction * images), images - 1)


def _fingerprint(root: Path, files, image_size: int) -> str:
    """Changes whenever an image is added, removed, renamed or modified, or the size changes."""
    h = hashlib.sha1(json.dumps([CACHE_VERSION, image_size]).encode())
    for path, label in files:
        stat = path.stat()
        h.update(f"{path.relative_to(root)}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def decode(path: Path, size: int) -> torch.Tensor:
    """uint8 3 x size x size: RGB, shorter side resized to `size`, centre crop."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = size / min(img.size)
            w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
            img = img.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)
            left, top = (w - size) // 2, (h - size) // 2
            img = img.crop((left, top, left + size, top + size))
            pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, DecompressionBombError, ...)
        raise UserError(f"cannot read image {path} ({type(e).__name__}: {e}); fix or remove the file") from None
    return pixels.view(size, size, 3).permute(2, 0, 1).contiguous()


def _decode_all(files, size: int):
    x = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    for i, (path, _) in enumerate(files):
        x[i] = decode(path, size)
    return x, torch.tensor([label for _, label in files], dtype=torch.int64)


def _split(y: torch.Tensor, test_fraction: float, seed: int):
    """Per class, a seeded test_fraction of the images goes to test (at least one stays in train)."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in y.unique().tolist():
        index = torch.nonzero(y == label).flatten()
        index = index[torch.randperm(len(index), generator=g)]
        n_test = _test_count(test_fraction, len(index))
        test.append(index[:n_test])
        train.append(index[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def load_folder(cfg):
    """((train_x, train_y), (test_x, test_y)), images uint8 N x 3 x image_size x image_size."""
    root = Path(cfg.root)
    classes, train_files, test_files = _layout(root)
    files = train_files + (test_files or [])
    cache = root / f".resexp-cache-{cfg.image_size}px.pt"
    fingerprint = _fingerprint(root, files, cfg.image_size)
    try:
        cached = torch.load(cache, weights_only=True) if cache.is_file() else {}
    except Exception:  # a damaged cache is only a cache: decode again
        cached = {}
    if cached.get("fingerprint") == fingerprint:
        x, y = cached["x"], cached["y"]
    else:
        console.print(f"decoding {len(files)} images from {root} at {cfg.image_size}px", highlight=False)
        x, y = _decode_all(files, cfg.image_size)
        try:
            torch.save({"fingerprint": fingerprint, "classes": classes, "x": x, "y": y}, cache)
        except OSError as e:  # a read-only dataset still trains, it just decodes again next time
            console.print(f"[yellow]warning:[/] could not write the cache {cache} ({e})", highlight=False)
    if test_files is None:
        train, test = _split(y, cfg.test_fraction, cfg.split_seed)
    else:
        train, test = torch.arange(len(train_files)), torch.arange(len(train_files), len(files))
    return (x[train], y[train]), (x[test], y[test])


def check_folder(cfg, files: bool) -> None:
    from omegaconf import OmegaConf
    if OmegaConf.is_missing(cfg, "root"):
        raise UserError("dataset=folder needs dataset.root=DIR, a folder with one sub-folder of images per class")
    if files:
        check_files(cfg)


FOLDER = Dataset(load_folder, lambda cfg: (3, cfg.image_size), check_folder)
