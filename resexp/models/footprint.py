"""How much memory a net trains in, known before any of it is allocated: the net is built and run once on
torch's `meta` device, which gives every shape and no storage, so `model.width=100000` is measured in
milliseconds instead of failing in the allocator after the data is loaded. The same pass counts the net's
multiply-adds, which a sweep's launcher uses to start its costliest jobs first."""
from functools import lru_cache
from typing import NamedTuple

import torch
from torch.utils.flop_counter import FlopCounterMode

FP32 = 4  # bytes per number: weights, gradients, optimizer state and saved activations (bf16 halves only the last)


class Footprint(NamedTuple):
    parameters: int  # numbers in the weights
    activations: int  # numbers every layer outputs for one image, all kept for the backward pass
    multiply_adds: int  # of one image's forward pass (torch's counter counts one as 2 FLOPs)


@lru_cache(maxsize=256)
def footprint(arch: str, depth: int, options: tuple, in_channels: int, side: int, num_classes: int) -> Footprint:
    """The net's numbers (`options`: its model options as sorted (key, value) pairs, hashable so that a
    sweep's thousand seeds measure one net once)."""
    from . import build_model
    with torch.device("meta"):
        model = build_model(arch=arch, depth=depth, num_classes=num_classes, in_channels=in_channels,
                            **dict(options))
    outputs = []

    def count(module, inputs, output):
        if isinstance(output, torch.Tensor):
            outputs.append(output.numel())

    model.eval()  # one image: batch norm in training mode would refuse a 1x1 map of it
    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, in_channels, side, side, device="meta"))
    for hook in hooks:
        hook.remove()
    return Footprint(sum(p.numel() for p in model.parameters()), sum(outputs), counter.get_total_flops() // 2)


def training_bytes(fp: Footprint, batch_size: int, state_per_weight: int) -> tuple[int, int]:
    """(bytes of weights, gradients and `state_per_weight` optimizer numbers per weight, bytes of the
    activations a batch keeps for its backward pass)."""
    return fp.parameters * FP32 * (2 + state_per_weight), fp.activations * FP32 * batch_size

