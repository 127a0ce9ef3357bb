"""Optimizers and learning-rate schedules from the `optimizer` and `schedule` config groups."""
import math

import torch


def make_optimizer(cfg, params, device="cpu", graphed=False):
    """The fused (one kernel per step) optimizer with its lr as a device tensor: the schedule writes the
    tensor in place, so a captured CUDA graph of the step reads each new lr without a re-capture.
    `graphed`: the step will be captured in a CUDA graph; Adam must then keep its step count on the device
    (capturable), or torch refuses the capture. SGD's fused kernel has no host state to begin with."""
    lr = torch.tensor(float(cfg.lr), device=device)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov, fused=True)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, fused=True,
                                capturable=graphed)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def milestone_steps(cfg, total_steps: int, steps_per_epoch: int) -> list[int]:
    """The multistep milestones as iteration numbers, whatever `schedule.unit` they are given in."""
    per_unit = {"fraction": total_steps, "step": 1, "epoch": steps_per_epoch}[cfg.unit]
    return [round(m * per_unit) for m in cfg.milestones]


def lr_factor(cfg, step: int, total_steps: int, steps_per_epoch: int = 1) -> float:
    """Multiplier of the base lr at `step` (0-based) of a run of `total_steps`."""
    if cfg.name == "multistep":
        passed = sum(step >= m for m in milestone_steps(cfg, total_steps, steps_per_epoch))
        return cfg.gamma ** passed
    if cfg.name == "cosine":
        return cfg.min_factor + (1 - cfg.min_factor) * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    if cfg.name == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {cfg.name!r}")


def make_schedule(cfg, optimizer, total_steps, steps_per_epoch=1, warmup=None):
    """A per-step LambdaLR: call .step() after every optimizer step. A WarmUp scales the lr while active."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step, total_steps, steps_per_epoch) * (warmup.factor() if warmup else 1.0))
