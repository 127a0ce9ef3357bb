"""Datasets as tensors on the training device; a batch is an index slice."""
from dataclasses import dataclass

import torch

from ..errors import UserError
from .augment import random_crop, random_flip
from .cifar import CIFAR
from .dataset import Dataset
from .folder import FOLDER
from .mnist import MNIST
from .synthetic import SYNTHETIC

# `dataset.name` -> its declaration (dataset.Dataset), one line a dataset.
DATASETS: dict[str, Dataset] = {
    "synthetic": SYNTHETIC,
    "cifar10": CIFAR,
    "cifar100": CIFAR,
    "folder": FOLDER,
    "fashion_mnist": MNIST,
    "mnist": MNIST,
}


def input_shape(cfg) -> tuple[int, int, int, int]:
    """(channels, height, width, classes) of the `dataset` config's images, without reading any image."""
    channels, side = DATASETS[cfg.name].shape(cfg)
    classes = cfg.num_classes
    if classes is None:  # an image folder: one class per sub-folder
        from .folder import class_names
        classes = len(class_names(cfg.root))
    return channels, side, side, classes


@dataclass
class Data:
    train_x: torch.Tensor  # uint8, N x C x H x W, on the device
    train_y: torch.Tensor  # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor     # float, C x 1 x 1 (per channel) or C x H x W (per pixel), from the training split
    std: torch.Tensor
    num_classes: int
    flip: bool = False
    crop_padding: int = 0
    val_x: torch.Tensor | None = None  # held out of the training split when dataset.val_size > 0
    val_y: torch.Tensor | None = None

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    def normalize(self, x):
        return (x.float() - self.mean) / self.std

    def train_batch(self, index, generator=None):
        """The training images at `index`, augmented and normalized; the random crop and flip draw from
        `generator`, by default the device's default generator (which a CUDA graph can capture)."""
        x = self.normalize(self.train_x[index])
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        return x, self.train_y[index]


def split_off_validation(x, y, val_size: int, seed: int):
    """((train_x, train_y), (val_x, val_y)): a seeded random val_size images leave the training split."""
    if val_size >= len(y):
        raise UserError(f"dataset.val_size={val_size} leaves no training images (the training split has {len(y)})")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    val, train = order[:val_size].sort().values, order[val_size:].sort().values
    return (x[train], y[train]), (x[val], y[val])


def input_statistics(train_x, normalize: str):
    """(mean, std) of the training split: per channel, or the per-pixel mean and one global std."""
    pixels = train_x.float()
    if normalize == "per_pixel":  # He et al. 2015, sec. 4.2: "the per-pixel mean subtracted"
        return pixels.mean(dim=0), pixels.std().view(1, 1, 1)
    return pixels.mean(dim=(0, 2, 3), keepdim=True)[0], pixels.std(dim=(0, 2, 3), keepdim=True)[0]


def load_dataset(cfg, device) -> Data:
    (train_x, train_y), (test_x, test_y) = DATASETS[cfg.name].load(cfg)
    val_x = val_y = None
    if cfg.val_size:
        (train_x, train_y), (val_x, val_y) = split_off_validation(train_x, train_y, cfg.val_size, cfg.split_seed)
        val_x, val_y = val_x.to(device), val_y.to(device)
    train_x, test_x = train_x.to(device), test_x.to(device)
    mean, std = input_statistics(train_x, cfg.normalize)
    num_classes = cfg.num_classes or int(max(train_y.max(), test_y.max())) + 1  # folder: from the class folders
    return Data(train_x, train_y.to(device), test_x, test_y.to(device), mean, std,
                num_classes=num_classes, flip=cfg.augment.flip, crop_padding=cfg.augment.crop_padding,
                val_x=val_x, val_y=val_y)
