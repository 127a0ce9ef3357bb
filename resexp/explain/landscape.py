"""`resexp landscape RUN [RUN ...]`: the training loss around a trained net's weights, on a plane.

Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (NeurIPS; their Fig. 5 is ResNet-56
with and without shortcuts): two random Gaussian directions d1, d2 in weight space, each filter of
each scaled to the norm of the same filter of the trained weights theta (filter normalization; a
filter is one output channel of a conv, one output unit of a linear layer), and zero for every 1-D
parameter (BN's scale and shift, biases), as the paper does. The loss and error of theta + a*d1 + b*d2
are evaluated on a grid of (a, b), on a fixed random subset of the run's own training images in its
own preprocessing (no augmentation), through the run's own evaluation code. BN normalizes with the
run's running statistics (eval mode), as Li et al.'s code evaluates. The directions come from one
seeded generator drawn in parameter order, so nets of the same shape (plain-56, ResNet-56 with
option A) get the same directions.
"""
import math
import time
from pathlib import Path

import torch
from rich.table import Table

from ..console import console
from ..train.evaluate import evaluate
from .nets import (Datasets, check_images, check_positive, labels, net_label, open_run, output_dir, pick_device,
                   progress, run_parser, save, trained_model, training_subset)

FILES = ("landscape_contour.png", "landscape_surface.png", "landscape_slice.png", "landscape.json")
IMAGES = 1000  # training images by default: 0.6 s per grid point for ResNet-56 at 16x16 on one CPU thread
MAX_GRID = 101  # 10,201 evaluations: hours for a deep net on a CPU


def filter_normalized(model, generator) -> list[torch.Tensor]:
    """One random direction, a tensor per parameter: Gaussian, each filter rescaled to the norm of the
    weights' filter, 1-D parameters (BN, biases) zero. Drawn on the CPU so every device gets the same."""
    direction = []
    for p in model.parameters():
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype)
        if p.dim() <= 1:
            d.zero_()
        else:
            w = p.detach().cpu().flatten(1).norm(dim=1)
            d *= (w / d.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, *[1] * (p.dim() - 1))
        direction.append(d.to(p.device))
    return direction


def directions(model, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return filter_normalized(model, generator), filter_normalized(model, generator)


def grid_coordinates(grid: int, span: float) -> list[float]:
    """`grid` points over [-span, span]; the middle one is exactly 0 (grid is odd)."""
    half = (grid - 1) // 2
    return [span * (i - half) / half for i in range(grid)]


@torch.no_grad()
def surface(model, subset, d1, d2, coords, batch_size, tick=lambda: None) -> tuple[list, list]:
    """(loss, error %) at theta + a*d1 + b*d2, rows b and columns a of `coords`; theta put back after."""
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    loss, error = [], []
    try:
        for b in coords:
            loss.append([]), error.append([])
            for a in coords:
                for p, t, x, y in zip(params, theta, d1, d2):
                    p.copy_(t + a * x + b * y)
                e, l = evaluate(model, subset, batch_size, split="train")
                loss[-1].append(l), error[-1].append(e)
                tick()
    finally:
        for p, t in zip(params, theta):
            p.copy_(t)
    return loss, error


def summary(loss, coords) -> dict:
    """Numbers that tell a smooth bowl from a rough landscape: the centre's loss, the mean rise of the
    loss at half the span along the four axis directions, the share of the grid above twice the centre's
    loss, and the grid points lower than all their neighbours (local minima; a convex bowl has one)."""
    n, c = len(coords), len(coords) // 2
    q = round(c / 2)
    centre = loss[c][c]
    rise = sum(loss[i][j] for i, j in ((c, c - q), (c, c + q), (c - q, c), (c + q, c))) / 4 - centre
    values = [v for row in loss for v in row]
    minima = 0
    for i in range(n):
        for j in range(n):
            around = [loss[i + di][j + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)
                      if (di or dj) and 0 <= i + di < n and 0 <= j + dj < n]
            minima += all(loss[i][j] < v for v in around)
    return {"centre_loss": centre, "rise_at": abs(coords[c + q]), "rise": rise,
            "above_2x": sum(v > 2 * centre for v in values) / len(values), "max_loss": max(values),
            "local_minima": minima}


def landscape_run(run_dir: Path, cfg, checkpoint: Path, model, data, opts, device, bar) -> dict:
    start = time.perf_counter()
    subset = training_subset(data, opts.images, IMAGES, opts.seed, device)
    d1, d2 = directions(model, opts.seed)
    coords = grid_coordinates(opts.grid, opts.span)
    task = bar.add_task(net_label(cfg), total=len(coords) ** 2)
    loss, error = surface(model, subset, d1, d2, coords, cfg.trainer.eval_batch_size,
                          lambda: bar.advance(task))
    c = len(coords) // 2
    return {"run": str(run_dir), "net": net_label(cfg), "checkpoint": checkpoint.name, "images": len(subset.train_y),
            "seed": opts.seed, "coords": coords, "loss": loss, "error": error,
            "summary": {**summary(loss, coords), "centre_error": error[c][c]},
            "seconds": time.perf_counter() - start}


def table(results) -> Table:
    s = results[0]["summary"]
    t = Table(title=f"Training loss on a random plane, {results[0]['images']} training images",
              caption=f"rise: mean loss at |a| or |b| = {s['rise_at']:g} on the axes, minus the centre's;\n"
                      "> 2x: share of the grid above twice the centre's loss; minima: points below all 8 neighbours")
    for name, justify in (("net", "left"), ("loss", "right"), ("error %", "right"), ("rise", "right"),
                          ("> 2x", "right"), ("max", "right"), ("minima", "right")):
        t.add_column(name, justify=justify)
    for label, r in zip(labels(results), results):
        s = r["summary"]
        t.add_row(label, f"{s['centre_loss']:.3g}", f"{s['centre_error']:.2f}", f"{s['rise']:.3g}",
                  f"{100 * s['above_2x']:.0f}%", f"{s['max_loss']:.3g}", str(s["local_minima"]))
    return t


def _levels(results):
    """Shared contour levels and colour norm: log-spaced from the lowest loss of all runs to 100x the highest
    centre loss (the loss of a bad guess is about ln(classes); far beyond, the picture needs no detail)."""
    from matplotlib.colors import LogNorm
    values = [v for r in results for row in r["loss"] for v in row if math.isfinite(v) and v > 0]
    low = min(values)
    high = max(min(max(values), 100 * max(r["summary"]["centre_loss"] for r in results)), low * 1.01)
    levels = [low * (high / low) ** (i / 24) for i in range(25)]
    return levels, LogNorm(low, high)


def figures(results, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = labels(results)
    levels, norm = _levels(results)
    cols = len(results)
    fig, axes = plt.subplots(1, cols, figsize=(4.6 * cols + 1.2, 4.4), squeeze=False, layout="constrained")
    for ax, r, name in zip(axes[0], results, names):
        contours = ax.contourf(r["coords"], r["coords"], r["loss"], levels=levels, norm=norm, cmap="viridis",
                               extend="both")
        ax.contour(r["coords"], r["coords"], r["loss"], levels=levels[::3], colors="white", linewidths=0.4,
                   alpha=0.6)
        ax.plot(0, 0, "r+", markersize=9)
        ax.set_title(f"{name}: centre loss {r['summary']['centre_loss']:.3g}")
        ax.set_xlabel("a (direction 1)")
        ax.set_aspect("equal")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
    axes[0][0].set_ylabel("b (direction 2)")
    fig.colorbar(contours, ax=axes[0].tolist(), label=f"training loss (log scale, top colour: above {levels[-1]:.3g})",
                 format="%.3g")
    fig.suptitle("Loss landscape (Li et al. 2018): theta + a d1 + b d2, filter-normalized random directions")
    fig.savefig(out / FILES[0], dpi=150)
    plt.close(fig)

    fig = plt.figure(figsize=(4.8 * cols + 0.6, 4.6), layout="constrained")
    top = math.log10(max(levels))
    for i, (r, name) in enumerate(zip(results, names), start=1):
        ax = fig.add_subplot(1, cols, i, projection="3d")
        a, b = torch.meshgrid(torch.tensor(r["coords"]), torch.tensor(r["coords"]), indexing="xy")
        z = torch.tensor(r["loss"]).clamp(levels[0], levels[-1]).log10()
        ax.plot_surface(a.numpy(), b.numpy(), z.numpy(), cmap="viridis", norm=matplotlib.colors.Normalize(
            math.log10(levels[0]), top), rstride=1, cstride=1, linewidth=0, antialiased=True)
        ax.set_zlim(math.log10(levels[0]), top)
        ax.set_title(name)
        ax.set_xlabel("a")
        ax.set_ylabel("b")
        ax.set_zlabel("log10 training loss")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(5))
    fig.suptitle(f"Loss surface, same scale for every net (clipped at {levels[-1]:.3g})")
    fig.savefig(out / FILES[1], dpi=150)
    plt.close(fig)

    fig, (lossax, errax) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for r, name in zip(results, names):
        c = len(r["coords"]) // 2
        lossax.plot(r["coords"], r["loss"][c], "o-", markersize=3, linewidth=1.2, label=name)
        errax.plot(r["coords"], r["error"][c], "o-", markersize=3, linewidth=1.2, label=name)
    lossax.set_yscale("log")
    lossax.set_ylabel("training loss (log scale)")
    errax.set_ylabel("training error (%)")
    errax.set_ylim(0, 100)
    for ax in (lossax, errax):
        ax.set_xlabel("a (direction 1, b = 0)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("1-D slice through the trained weights along direction 1 (b = 0)")
    fig.savefig(out / FILES[2], dpi=150)
    plt.close(fig)


def main(args) -> int:
    p = run_parser("landscape", __doc__, FILES, "of the directions and of the images", device=True)
    p.add_argument("--grid", type=int, default=21, help="points per axis, odd so (0, 0) is on it (default: 21)")
    p.add_argument("--span", type=float, default=1.0, help="the grid covers [-SPAN, SPAN] on both axes (default: 1)")
    p.add_argument("--images", type=int, help=f"training images the loss is measured on (default: {IMAGES}, or all "
                                               "where there are fewer)")
    opts = p.parse_args(args)
    if opts.grid < 3 or opts.grid % 2 == 0 or opts.grid > MAX_GRID:
        p.error(f"--grid {opts.grid} is invalid; it must be odd, from 3 to {MAX_GRID} (each point is one evaluation)")
    if not (math.isfinite(opts.span) and opts.span > 0):
        p.error(f"--span {opts.span} is invalid; it must be a positive number")
    check_positive(p, images=opts.images)
    device = pick_device(opts.device)
    runs = [(Path(run), *open_run(Path(run), "landscape")) for run in opts.runs]
    datasets = Datasets()
    for run, cfg, _ in runs:
        check_images(opts.images, run, datasets(cfg.dataset))
    out = output_dir(opts.out, "landscape", FILES)  # claimed once every refusal has had its say
    models = [trained_model(cfg, checkpoint, datasets(cfg.dataset), device) for _, cfg, checkpoint in runs]
    with progress() as bar:
        results = [landscape_run(run, cfg, checkpoint, model, datasets(cfg.dataset), opts, device, bar)
                   for (run, cfg, checkpoint), model in zip(runs, models)]
    text = save(out, results, FILES, lambda folder: figures(results, folder))
    if opts.json:
        print(text)
        return 0
    console.print(table(results))
    times = ", ".join(f"{name} {r['seconds']:.0f} s" for name, r in zip(labels(results), results))
    console.print(f"{opts.grid}x{opts.grid} grid over [-{opts.span:g}, {opts.span:g}]: {times}", highlight=False)
    console.print(f"wrote {out}/: {' '.join(FILES)}", highlight=False, soft_wrap=True)
    return 0
