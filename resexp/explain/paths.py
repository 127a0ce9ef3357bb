"""`resexp paths RUN`: how much gradient the paths of each length carry through a trained residual net.

Veit et al. 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow Networks", sec. 5
and Fig. 6. A net of n residual blocks unrolls into 2^n paths, C(n, k) of them through k residual
branches and the shortcuts of the other n - k blocks. Backpropagation through a fixed forward pass is
linear, so the ordinary gradient is the sum of the gradients along all 2^n paths. As the paper does:
one forward pass of a batch of training images, then backward passes that go, for k randomly drawn
blocks, through the residual branch only, and for the other n - k through the shortcut only; the
magnitude of the gradient that reaches the input images is what one path of length k carries.
Times C(n, k), the total that paths of length k contribute.

A block's residual branch is everything in it but its shortcut h(x): the convs, norms and, in the
gated units, the gate; the shortcut route is h(x) alone (times the gate's value where there is one).
Layers after the addition (a ReLU) and outside the blocks (stem, classifier) are on every path.
BN normalizes with the run's running statistics (eval mode), as the trained net predicts.
"""
import math
import random
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.table import Table

from ..errors import UserError
from ..models.residual import shortcut_of
from ..console import console
from .nets import (Datasets, check_images, check_positive, net_label, open_run, output_dir, pick_device, progress,
                   run_parser, save, trained_model, training_subset)

FILES = ("paths.png", "paths.json")
IMAGES = 128  # training images in the batch by default


class _Route(torch.autograd.Function):
    """The identity forward; backward, the gradient passes only when the router's choice is `branch`."""

    @staticmethod
    def forward(ctx, x, router, branch: bool):
        ctx.router, ctx.branch = router, branch
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        open_ = ctx.router.branch is None or ctx.router.branch == ctx.branch
        return (grad if open_ else None), None, None


class Router:
    """Splits a residual block's input in two equal tensors, one for the shortcut, one for the rest of
    the block, so the backward pass can be sent through either. `branch`: True sends it through the
    residual branch only, False through the shortcut only, None through both (the ordinary gradient)."""

    def __init__(self, block):
        self.block, self.branch, self._input, self._routed = block, None, None, None

    def block_input(self, module, args):
        self._input = args[0]
        self._routed = _Route.apply(args[0], self, True)
        return (self._routed, *args[1:])

    def shortcut_input(self, module, args):
        if args[0] is not self._routed:
            raise RuntimeError(f"{type(self.block).__name__}'s shortcut does not take the block's input")
        return (_Route.apply(self._input, self, False), *args[1:])


def residual_blocks(model) -> list:
    """Every module with a shortcut, in the order the model registers them (its forward order)."""
    return [m for m in model.modules() if shortcut_of(m) is not None]


@contextmanager
def routed(blocks):
    """Routers on `blocks` (in their order) for the forward passes inside the block; hooks removed after."""
    routers, hooks = [Router(b) for b in blocks], []
    try:
        for r in routers:
            hooks.append(r.block.register_forward_pre_hook(r.block_input))
            hooks.append(shortcut_of(r.block).register_forward_pre_hook(r.shortcut_input))
        yield routers
    finally:
        for hook in hooks:
            hook.remove()


def input_gradient(loss, x, routers, through) -> torch.Tensor:
    """d loss / d x along the paths through the residual branches of the blocks at indices `through`
    (and the shortcuts of the others); `through=None`: along every path."""
    for i, r in enumerate(routers):
        r.branch = None if through is None else i in through
    (g,) = torch.autograd.grad(loss, x, retain_graph=True, materialize_grads=True)
    return g


def magnitude(g) -> float:
    """Mean over images of the L2 norm of an image's input gradient."""
    return g.flatten(1).norm(dim=1).mean().item()


def effective_range(contribution: list[float], share: float) -> tuple[int, int]:
    """The shortest run of path lengths [k1, k2] whose contributions add up to `share` of the total
    (of equal runs, the one holding the most)."""
    total, n = sum(contribution), len(contribution)
    best = (0, n - 1)
    for k1 in range(n):
        acc = 0.0
        for k2 in range(k1, n):
            acc += contribution[k2]
            if acc >= share * total:
                shorter = k2 - k1 < best[1] - best[0]
                tie = k2 - k1 == best[1] - best[0] and acc > sum(contribution[best[0]:best[1] + 1])
                if shorter or tie:
                    best = (k1, k2)
                break
    return best


def residual_model(run_dir: Path, cfg, checkpoint: Path, data, opts, device):
    """The run's trained net and its residual blocks; one line for a net without any, or too few images."""
    model = trained_model(cfg, checkpoint, data, device).eval()
    blocks = residual_blocks(model)
    if not blocks:
        raise UserError(f"{run_dir} is {net_label(cfg)}, which has no residual blocks: there are no paths but one, "
                        "through every layer; paths needs a residual net")
    check_images(opts.images, run_dir, data)
    return model, blocks


def paths_run(run_dir: Path, cfg, checkpoint: Path, model, blocks, data, opts, device) -> dict:
    start = time.perf_counter()
    n = len(blocks)
    batch = training_subset(data, opts.images, IMAGES, opts.seed, device)
    x = batch.normalize(batch.train_x).requires_grad_()
    y = batch.train_y
    rng = random.Random(opts.seed)
    rows = []
    with routed(blocks) as routers, progress() as bar:
        loss = F.cross_entropy(model(x), y, reduction="sum")  # per image: the gradient of its own loss
        ordinary = magnitude(input_gradient(loss, x, routers, None))
        task = bar.add_task(net_label(cfg), total=(n + 1) * opts.samples)
        for k in range(n + 1):
            draws = []
            for _ in range(opts.samples):
                draws.append(magnitude(input_gradient(loss, x, routers, set(rng.sample(range(n), k)))))
                bar.advance(task)
            mean = statistics.fmean(draws)
            rows.append({"k": k, "paths": math.comb(n, k), "magnitude": mean, "min": min(draws), "max": max(draws),
                         "contribution": math.comb(n, k) * mean})
    contribution = [row["contribution"] for row in rows]
    k1, k2 = effective_range(contribution, opts.share)
    peak = max(range(n + 1), key=contribution.__getitem__)
    inside = sum(contribution[k1:k2 + 1]) / sum(contribution)
    paths_inside = sum(math.comb(n, k) for k in range(k1, k2 + 1)) / 2 ** n
    decay = (rows[-1]["magnitude"] / rows[0]["magnitude"]) ** (1 / n) if rows[0]["magnitude"] > 0 else None
    return {"run": str(run_dir), "net": net_label(cfg), "checkpoint": checkpoint.name, "blocks": n,
            "images": len(y), "samples": opts.samples, "seed": opts.seed, "ordinary_magnitude": ordinary,
            "by_length": rows, "effective": {"share": opts.share, "from": k1, "to": k2, "gradient_share": inside,
                                             "path_share": paths_inside, "peak": peak},
            "decay_per_block": decay, "seconds": time.perf_counter() - start}


def table(r) -> Table:
    e = r["effective"]
    t = Table(title=f"Gradient by path length, {r['net']} ({r['blocks']} residual blocks)")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("paths (2^n)", f"{2 ** r['blocks']:,}")
    t.add_row("mean path length (n/2)", f"{r['blocks'] / 2:g}")
    t.add_row(f"effective paths ({100 * e['share']:.0f}% of the gradient)", f"{e['from']}-{e['to']} blocks")
    t.add_row("  their share of the gradient", f"{100 * e['gradient_share']:.1f}%")
    t.add_row("  their share of all paths", f"{100 * e['path_share']:.2f}%")
    t.add_row("largest total at length", str(e["peak"]))
    t.add_row("|grad| of one path, length 0", f"{r['by_length'][0]['magnitude']:.3g}")
    t.add_row(f"|grad| of one path, length {r['blocks']}", f"{r['by_length'][-1]['magnitude']:.3g}")
    if r["decay_per_block"] is not None:
        t.add_row("|grad| factor per residual branch", f"{r['decay_per_block']:.3g}")
    t.add_row("|grad| ordinary (all paths)", f"{r['ordinary_magnitude']:.3g}")
    t.caption = f"|grad|: mean L2 norm of an image's input gradient, {r['images']} training images"
    return t


def figure(r, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, e = r["by_length"], r["effective"]
    k = [row["k"] for row in rows]
    fig, (dist, grad, total) = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    dist.bar(k, [row["paths"] / 2 ** r["blocks"] for row in rows], color="tab:blue", width=0.8)
    dist.set_title("(a) distribution of path length")
    dist.set_ylabel("share of all 2^n paths")
    grad.semilogy(k, [row["magnitude"] for row in rows], "o-", color="tab:orange", markersize=3, linewidth=1.2)
    grad.fill_between(k, [row["min"] for row in rows], [row["max"] for row in rows], color="tab:orange",
                      alpha=0.25, linewidth=0)
    grad.set_title(f"(b) gradient magnitude of one path (min-max of {r['samples']})")
    grad.set_ylabel("|d loss / d image| (log scale)")
    total.plot(k, [row["contribution"] for row in rows], "o-", color="tab:green", markersize=3, linewidth=1.2)
    total.axvspan(e["from"] - 0.5, e["to"] + 0.5, color="tab:green", alpha=0.15,
                  label=f"effective: {e['from']}-{e['to']} ({100 * e['gradient_share']:.0f}% of the gradient)")
    total.set_title("(c) total gradient magnitude per path length")
    total.set_ylabel("paths x magnitude")
    total.legend(fontsize="small")
    for ax in (dist, grad, total):
        ax.set_xlabel("path length k (residual branches passed)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{r['net']}: {r['blocks']} residual blocks, 2^{r['blocks']} paths (Veit et al. 2016, Fig. 6)")
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(args) -> int:
    p = run_parser("paths", __doc__, FILES, "of the images and of the blocks drawn", several=False, device=True)
    p.add_argument("--images", type=int, help=f"training images in the batch (default: {IMAGES}, or all where there "
                                               "are fewer)")
    p.add_argument("--samples", type=int, default=20, help="random sets of blocks per path length (default: 20)")
    p.add_argument("--share", type=float, default=0.9,
                   help="share of the gradient the effective path range holds (default: 0.9)")
    opts = p.parse_args(args)
    check_positive(p, images=opts.images, samples=opts.samples)
    if not 0 < opts.share <= 1:
        p.error(f"--share {opts.share} is invalid; it must be in (0, 1]")
    device = pick_device(opts.device)
    run = Path(opts.run)
    cfg, checkpoint = open_run(run, "paths")
    data = Datasets()(cfg.dataset)
    model, blocks = residual_model(run, cfg, checkpoint, data, opts, device)
    out = output_dir(opts.out, "paths", FILES)  # claimed once every refusal has had its say
    result = paths_run(run, cfg, checkpoint, model, blocks, data, opts, device)
    text = save(out, result, FILES, lambda folder: figure(result, folder / FILES[0]))
    if opts.json:
        print(text)
        return 0
    console.print(table(result))
    console.print(f"{result['seconds']:.0f} s; wrote {out}/: {' '.join(FILES)}", highlight=False, soft_wrap=True)
    return 0
