"""The warm-up of He et al. 2015, sec. 4.2: for ResNet-110 "we use 0.01 to warm up the training
until the training error is below 80% (about 400 iterations), and then go back to 0.1".

A small state machine with state_dict()/load_state_dict(), so a resumed run continues its warm-up
(or stays past it). The schedule multiplies the lr by factor() at every step.
"""
import torch

from . import distributed


class WarmUp:
    def __init__(self, lr_factor: float, until_error: float, window: int, active: bool, device="cpu"):
        self.lr_factor = lr_factor      # warm-up lr / the optimizer's lr (paper: 0.01 / 0.1)
        self.until_error = until_error  # %, training error averaged over `window` iterations
        self.window = window
        self.active = active
        self.ended_at = None            # step after which the normal lr took over
        self._sums = None               # [wrong, seen] since the last check, on the device
        self._steps = 0
        self.device = torch.device(device)

    @classmethod
    def from_config(cls, cfg, depth: int, base_lr: float, device="cpu") -> "WarmUp":
        """cfg is the `warmup` block; inactive when warmup.lr is null or depth < warmup.min_depth."""
        active = cfg.lr is not None and depth >= cfg.min_depth
        return cls((cfg.lr or base_lr) / base_lr, cfg.until_error, cfg.window, active, device)

    def factor(self) -> float:
        return self.lr_factor if self.active else 1.0

    def observe(self, step: int, wrong: torch.Tensor, seen: torch.Tensor) -> None:
        """Count one training step's errors; every `window` steps, end the warm-up if the error is low.

        The error is that of the global batch: under torchrun the window's counts are summed over the
        ranks, so every rank takes the same decision at the same step. One host sync (and one reduction)
        per window, and none at all once the warm-up is over."""
        if not self.active:
            return
        counts = torch.stack([wrong, seen]).float()
        self._sums = counts if self._sums is None else self._sums + counts
        self._steps += 1
        if self._steps < self.window:
            return
        wrong_sum, seen_sum = distributed.all_sum(self._sums).tolist()
        self._sums, self._steps = None, 0
        if 100 * wrong_sum / seen_sum < self.until_error:
            self.active, self.ended_at = False, step

    def state_dict(self) -> dict:
        sums = [0.0, 0.0] if self._sums is None else self._sums.tolist()
        return {"active": self.active, "ended_at": self.ended_at, "sums": sums, "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        self.active, self.ended_at, self._steps = state["active"], state["ended_at"], state["steps"]
        self._sums = torch.tensor(state["sums"], device=self.device) if self._steps else None
