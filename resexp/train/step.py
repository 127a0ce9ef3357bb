"""The training step: one function of device tensors, called as it is (eager) or captured once and
replayed as a single CUDA graph (graphs.py). Both paths run this same code, so the CPU tests exercise it."""
import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..track.gradnorms import GradNorms

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def autocast(device: torch.device, precision: str):
    """bf16 autocast (fp32 weights and optimizer state), or nothing for fp32. The weight-cast cache is
    off: a captured graph must recompute the casts from the updated fp32 weights on every replay."""
    if DTYPES[precision] is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision], cache_enabled=False)


class Sums(NamedTuple):
    """The running sums a step adds to, named in the order its tensors hold them."""
    loss: float    # the loss times the images it is the mean over
    wrong: float   # wrong predictions
    images: float

    @property
    def mean_loss(self) -> float:
        return self.loss / self.images

    @property
    def error(self) -> float:
        """% of the images predicted wrong."""
        return 100 * self.wrong / self.images


WRONG, IMAGES = Sums._fields.index("wrong"), Sums._fields.index("images")  # where the tensors hold them


class TrainStep:
    """Forward, backward and optimizer step on the batch at `self.index`, plus the bookkeeping the loop
    reads at log points, all as in-place writes to tensors with fixed addresses (what a graph needs):

    - `since_log`, `since_eval`, `last`: the Sums (loss x images, wrong predictions, images)
    - `norms`: each conv/linear weight's gradient L2 norm (GradNorms' order)
    - `first_bad`: the first step whose loss was non-finite or above `divergence_loss`, else -1
    - `count`: steps taken

    Augmentation draws from the device's default generator (graph-safe); the lr is a device tensor in
    the optimizer's param groups, written by the schedule between steps, so it never needs a re-capture.
    """

    def __init__(self, model, optimizer, data, batch_size: int, *, precision="fp32", channels_last=False,
                 divergence_loss=1e4, compile=False):
        device = data.train_y.device
        self.model, self.optimizer, self.data = model, optimizer, data
        self.forward = torch.compile(model) if compile else model
        self.precision = precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.divergence_loss = divergence_loss
        self.grad_norms = GradNorms(getattr(model, "module", model))  # the layers themselves, under DDP too
        zeros = lambda *shape: torch.zeros(*shape, device=device)  # noqa: E731
        self.index = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.images = torch.full((), float(batch_size), device=device)
        self.count, self.first_bad = zeros(()), torch.full((), -1.0, device=device)
        self.last, self.since_log, self.since_eval = zeros(len(Sums._fields)), zeros(len(Sums._fields)), \
            zeros(len(Sums._fields))
        self.norms = zeros(len(self.grad_norms.weights))

    def __call__(self) -> None:
        x, y = self.data.train_batch(self.index)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(x.device, self.precision):
            out = self.forward(x.contiguous(memory_format=self.memory_format))
        loss = F.cross_entropy(out.float(), y)
        loss.backward()
        with torch.no_grad():
            self.norms.copy_(self.grad_norms.compute())
            loss = loss.detach()
            sums = Sums(loss=loss * self.images, wrong=(out.argmax(1) != y).sum().float(), images=self.images)
            self.last.copy_(torch.stack(sums))
            self.since_log += self.last
            self.since_eval += self.last
            self.count += 1
            exploded = ~(loss <= self.divergence_loss)  # NaN compares false, so it counts too
            self.first_bad.copy_(torch.where((self.first_bad < 0) & exploded, self.count, self.first_bad))
        self.optimizer.step()

    def state_dict(self) -> dict:
        return {"since_log": self.since_log.clone(), "since_eval": self.since_eval.clone()}

    def load_state_dict(self, state: dict, step: int) -> None:
        """Copies into the existing tensors: a graph captured later must see the same addresses."""
        self.since_log.copy_(state["since_log"])
        self.since_eval.copy_(state["since_eval"])
        self.count.fill_(step)

