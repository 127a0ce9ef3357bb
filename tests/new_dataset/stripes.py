"""A dataset written by CONTRIBUTING.md's recipe alone, for tests/test_data.py to drop into a copy of
resexp/data/ (it is not imported from here): class k is horizontal stripes of period k + 2, one
channel, `image_size` pixels a side, generated from the config's seed; no files."""
import torch

from ..errors import UserError
from .dataset import Dataset


def _images(n: int, classes: int, side: int, g: torch.Generator):
    y = torch.randint(0, classes, (n,), generator=g)
    rows = torch.arange(side)[None, :, None]
    period = (y + 2)[:, None, None]
    x = (rows % period < period // 2).expand(n, side, side).to(torch.uint8) * 255
    return x[:, None], y


def load_stripes(cfg):
    g = torch.Generator().manual_seed(cfg.seed)
    return (_images(cfg.train_size, cfg.num_classes, cfg.image_size, g),
            _images(cfg.test_size, cfg.num_classes, cfg.image_size, g))


def check_stripes(cfg, files: bool) -> None:
    if cfg.image_size < 2 * (cfg.num_classes + 1):
        raise UserError(f"dataset.image_size={cfg.image_size} is invalid; the stripes of {cfg.num_classes} classes "
                        f"need at least {2 * (cfg.num_classes + 1)} pixels")


STRIPES = Dataset(load_stripes, lambda cfg: (1, cfg.image_size), check_stripes)
