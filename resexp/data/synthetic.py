"""The embedded procedural dataset: offline, deterministic from its own seed, no files.

Each class owns a few binary colour patterns ("parts", half the image wide). An image is a smooth random background,
two parts of its class pasted at random positions with random contrast, one weaker distractor
part of another class, a random per-channel gain, and pixel noise. Position, gain and the
distractor defeat a linear classifier on pixels; a convolutional net finds the parts.
"""
import torch
import torch.nn.functional as F

from ..errors import UserError
from .dataset import Dataset

PARTS_PER_CLASS = 3


def _smooth_noise(g, n, channels, size, grid):
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    coarse = torch.rand(n, channels, grid, grid, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def _paste(canvas, parts, g):
    """Add parts (N,C,k,k) onto canvas (N,C,S,S) at one random position per image."""
    n, c, s, _ = canvas.shape
    k = parts.shape[-1]
    oy = torch.randint(0, s - k + 1, (n,), generator=g)
    ox = torch.randint(0, s - k + 1, (n,), generator=g)
    r = torch.arange(k)
    rows = (oy[:, None] + r)[:, None, :, None].expand(n, c, k, k)
    cols = (ox[:, None] + r)[:, None, None, :].expand(n, c, k, k)
    idx_n = torch.arange(n)[:, None, None, None].expand(n, c, k, k)
    idx_c = torch.arange(c)[None, :, None, None].expand(n, c, k, k)
    canvas.index_put_((idx_n, idx_c, rows, cols), parts, accumulate=True)


def generate(n, num_classes, image_size, noise, seed, parts):
    """n images (uint8, N x 3 x S x S) and labels, balanced over classes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    images = 0.35 * _smooth_noise(g, n, 3, image_size, 4)
    for _ in range(2):
        which = torch.randint(0, PARTS_PER_CLASS, (n,), generator=g)
        contrast = 0.6 + 0.6 * torch.rand(n, 1, 1, 1, generator=g)
        _paste(images, contrast * parts[labels, which], g)
    other = (labels + torch.randint(1, num_classes, (n,), generator=g)) % num_classes
    which = torch.randint(0, PARTS_PER_CLASS, (n,), generator=g)
    _paste(images, 0.5 * parts[other, which], g)
    images = images * (0.6 + 0.8 * torch.rand(n, 3, 1, 1, generator=g))
    images = images + noise * torch.randn(images.shape, generator=g)
    return (128 + 64 * images).round().clamp(0, 255).to(torch.uint8), labels


def load_synthetic(cfg):
    """Train and test splits from one seed; the parts are shared, the images are not."""
    g = torch.Generator().manual_seed(cfg.seed)
    k = max(3, cfg.image_size // 2)
    # Binary (+1/-1) blobs from a 4x4 grid: high contrast, so even a deep net picks them up in a few
    # hundred steps, while position, gain and the distractor still defeat a linear classifier.
    parts = torch.sign(_smooth_noise(g, cfg.num_classes * PARTS_PER_CLASS, 3, k, 4))
    parts = parts.view(cfg.num_classes, PARTS_PER_CLASS, 3, k, k)
    train = generate(cfg.train_size, cfg.num_classes, cfg.image_size, cfg.noise, cfg.seed + 1, parts)
    test = generate(cfg.test_size, cfg.num_classes, cfg.image_size, cfg.noise, cfg.seed + 2, parts)
    return train, test


def check_synthetic(cfg, files: bool) -> None:
    if cfg.image_size < 8:
        raise UserError(f"dataset.image_size={cfg.image_size} is invalid; dataset.image_size must be >= 8 for the "
                        "synthetic dataset")


SYNTHETIC = Dataset(load_synthetic, lambda cfg: (3, cfg.image_size), check_synthetic)
