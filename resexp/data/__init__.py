"""Datasets as tensors on the training device; a batch is an index slice."""
from dataclasses import dataclass

import torch

from .augment import random_crop, random_flip
from .synthetic import load_synthetic

# dataset name -> loader(cfg) -> ((train_x, train_y), (test_x, test_y)), images uint8 N x C x H x W.
LOADERS = {"synthetic": load_synthetic}


@dataclass
class Data:
    train_x: torch.Tensor  # uint8, N x C x H x W, on the device
    train_y: torch.Tensor  # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor     # float, C x 1 x 1: subtracted from every image (computed on the training split)
    std: torch.Tensor
    num_classes: int
    flip: bool = False
    crop_padding: int = 0

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    def normalize(self, x):
        return (x.float() - self.mean) / self.std

    def train_batch(self, index, generator):
        """The training images at `index`, augmented and normalized."""
        x = self.normalize(self.train_x[index])
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        return x, self.train_y[index]


def load_dataset(cfg, device) -> Data:
    (train_x, train_y), (test_x, test_y) = LOADERS[cfg.name](cfg)
    train_x, test_x = train_x.to(device), test_x.to(device)
    pixels = train_x.float()
    mean = pixels.mean(dim=(0, 2, 3), keepdim=True)[0]
    std = pixels.std(dim=(0, 2, 3), keepdim=True)[0]
    return Data(train_x, train_y.to(device), test_x, test_y.to(device), mean, std,
                num_classes=cfg.num_classes, flip=cfg.augment.flip, crop_padding=cfg.augment.crop_padding)
