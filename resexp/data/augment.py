"""Batched augmentation on the training device: no per-sample Python."""
import torch
import torch.nn.functional as F


def random_flip(x, generator):
    """Flip each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=generator) < 0.5
    return torch.where(flip, x.flip(3), x)


def random_crop(x, padding, generator):
    """Zero-pad by `padding` pixels, then crop each image back to its size at a random offset."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device, generator=generator)
    rows = (oy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]
