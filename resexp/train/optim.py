"""Optimizers and learning-rate schedules from the `optimizer` and `schedule` config groups."""
import math

import torch


def make_optimizer(cfg, params):
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def lr_factor(cfg, step: int, total_steps: int) -> float:
    """Multiplier of the base lr at `step` (0-based) of a run of `total_steps`."""
    if cfg.name == "multistep":
        passed = sum(step >= round(m * total_steps) for m in cfg.milestones)
        return cfg.gamma ** passed
    if cfg.name == "cosine":
        return cfg.min_factor + (1 - cfg.min_factor) * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    if cfg.name == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {cfg.name!r}")


def make_schedule(cfg, optimizer, total_steps):
    """A per-step LambdaLR: call .step() after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, total_steps))
