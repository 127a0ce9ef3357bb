"""`resexp bench`: training throughput of plain and residual nets on this machine's device."""
import argparse
import time

import torch
import torch.nn.functional as F
from rich.table import Table

from .models import build_model, count_parameters
from .track.progress import console
from .train.loop import pick_device


def time_training(model, batch, steps, warmup_steps=3):
    """Seconds per optimizer step (forward, backward, SGD step) on one fixed batch."""
    x, y = batch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup_steps):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main(args) -> int:
    parser = argparse.ArgumentParser(prog="resexp bench", description=__doc__)
    parser.add_argument("--models", default="plain,resnet", help="comma-separated families (default: plain,resnet)")
    parser.add_argument("--depths", default="20,56,110", help="comma-separated depths (default: 20,56,110)")
    parser.add_argument("--image-size", type=int, default=32, help="pixels per side (default: 32, CIFAR)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (default: 10)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    opts = parser.parse_args(args)
    device = pick_device(opts.device)
    torch.manual_seed(0)
    batch = (torch.randn(opts.batch_size, 3, opts.image_size, opts.image_size, device=device),
             torch.randint(0, 10, (opts.batch_size,), device=device))
    table = Table(title=f"training throughput on {device} ({torch.get_num_threads()} threads), "
                        f"batch {opts.batch_size}, {opts.image_size}x{opts.image_size}")
    for column in ("model", "depth", "params", "ms/step", "images/s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for arch in opts.models.split(","):
        for depth in map(int, opts.depths.split(",")):
            model = build_model(arch, depth).to(device)
            seconds = time_training(model, batch, opts.steps)
            table.add_row(arch, str(depth), f"{count_parameters(model) / 1e6:.2f}M", f"{1000 * seconds:.1f}",
                          f"{opts.batch_size / seconds:.0f}")
    console.print(table)
    return 0
