"""`resexp curvature RUN [RUN ...]`: the training loss's Hessian at a run's checkpoints.

At each checkpoint a run kept (or those --steps picks): the largest eigenvalue of the Hessian of the
training loss (the sharpness; Lanczos on Hessian-vector products, explain/hessian.py) and its trace
(Hutchinson, Rademacher probes, with its standard error), against the edge of stability 2/lr (Cohen et
al. 2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability", arXiv
2103.00065: gradient descent with step lr is unstable along a direction of curvature above 2/lr, and
full-batch training drives the sharpness up to that line and holds it there). The lr is the one in the
checkpoint's optimizer: the step that would follow from those weights (0 after a schedule's last step:
no line there). With heavy-ball momentum beta (SGD's) the threshold is (2 + 2 beta)/lr (their appendix);
it is drawn too.

The loss is the mean cross-entropy of a fixed random subset of the run's own training images (--seed),
in its own preprocessing, without augmentation, as the run's training step computes it: BN in train mode,
normalizing each batch of the run's batch size by that batch's own statistics. That is the function
whose gradient the optimizer followed, and so the one whose curvature decides the step's stability; in
eval mode (running statistics, as landscape and lesion evaluate) BN would be a fixed affine map and the
Hessian that of another function. Running statistics are not updated, dropout is off, weight decay is
left out (it adds its coefficient to every eigenvalue), and everything is float32.
"""
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.table import Table

from ..console import console
from ..errors import UserError
from ..train.checkpoint import checkpoint_paths, load_checkpoint
from .hessian import hutchinson_trace, hvp_operator, lanczos_top
from .nets import (Datasets, check_images, check_positive, labels, net_label, open_run, output_dir, pick_device,
                   progress, run_parser, save, trained_model, training_subset)

FILES = ("curvature.png", "curvature.json")
IMAGES = 512    # training images by default: 16 of degradation_quick's batches of 32
LANCZOS = 20    # most Hessian-vector products for the top eigenvalue (it stops sooner once converged)
PROBES = 10     # Rademacher probes for the trace
TOL = 1e-3      # Lanczos stops when the Ritz residual is below this share of the eigenvalue


def checkpoint_lr(state) -> tuple[float, float | None]:
    """(lr, momentum) of the checkpoint's optimizer: the lr its next step would take (a tensor in
    train/optim.py's optimizers), and SGD's heavy-ball momentum (0 without; None for Nesterov's and Adam,
    whose thresholds are other functions of lr)."""
    group = state["optimizer"]["param_groups"][0]
    heavy_ball = "momentum" in group and not group.get("nesterov", False)
    return float(group["lr"]), float(group["momentum"]) if heavy_ball else None


def picked_checkpoints(run_dir: Path, steps: list[int] | None) -> list[tuple[int, Path, float, float | None]]:
    """(step, path, lr, momentum) of every checkpoint the run kept, or of `steps`; each read back as data
    only before any work, so a corrupt one or a missing step is one line."""
    paths = checkpoint_paths(run_dir)
    kept = {int(p.stem.removeprefix("step_")): p for p in paths}
    if steps is not None:
        missing = [s for s in steps if s not in kept]
        if missing:
            raise UserError(f"--steps {missing[0]}: {run_dir} has no checkpoint at that step; it kept steps "
                            f"{', '.join(map(str, kept))}")
        kept = {s: kept[s] for s in sorted(set(steps))}
    return [(step, path, *checkpoint_lr(load_checkpoint(path, "cpu"))) for step, path in kept.items()]


def train_mode_losses(model, subset, batch_size: int):
    """(images, loss) per batch of `batch_size` images of the subset, each loss the batch's mean
    cross-entropy weighted by its share of the subset; their sum is the subset's mean loss as training
    steps of that batch size see it (under torchrun each process normalized its own share of the batch;
    here the whole batch is one). BN normalizes each batch by its own statistics and keeps none
    (functorch's replacement drops the running statistics), dropout is off."""
    from torch.func import replace_all_batch_norm_modules_
    replace_all_batch_norm_modules_(model)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.eval()
    n = len(subset.train_y)
    losses = []
    for start in range(0, n, batch_size):
        x = subset.normalize(subset.train_x[start:start + batch_size]).contiguous()
        y = subset.train_y[start:start + batch_size]
        losses.append((x, lambda out, y=y: F.cross_entropy(out, y) * (len(y) / n)))
    return losses


def curvature_at(model, subset, batch_size: int, opts, device, tick) -> dict:
    losses = train_mode_losses(model, subset, batch_size)
    with torch.no_grad():
        loss = sum(f(model(x)) for x, f in losses).item()
    apply, n = hvp_operator(model, losses)
    generator = torch.Generator().manual_seed(opts.seed)
    top = lanczos_top(apply, n, opts.lanczos, generator, TOL, device, tick)
    for _ in range(opts.lanczos - top["steps"]):  # converged early: the bar jumps ahead
        tick()
    trace = hutchinson_trace(apply, n, opts.probes, generator, device, tick)
    return {"loss": loss, "parameters": n, "top_eigenvalue": top["eigenvalue"], "residual": top["residual"],
            "lanczos_steps": top["steps"], "trace": trace["trace"], "trace_se": trace["se"],
            "trace_samples": trace["samples"]}


def curvature_run(run_dir: Path, cfg, picked, data, opts, device, bar) -> dict:
    subset = training_subset(data, opts.images, IMAGES, opts.seed, device)
    task = bar.add_task(net_label(cfg), total=len(picked) * (opts.lanczos + opts.probes))
    points = []
    for step, path, lr, momentum in picked:
        start = time.perf_counter()
        model = trained_model(cfg, path, data, device)
        point = curvature_at(model, subset, cfg.trainer.batch_size, opts, device, lambda: bar.advance(task))
        points.append({"step": step, "checkpoint": path.name, "lr": lr, "momentum": momentum,
                       "edge": 2 / lr if lr > 0 else None,
                       "edge_momentum": (2 + 2 * momentum) / lr if lr > 0 and momentum is not None else None,
                       **point, "seconds": time.perf_counter() - start})
    return {"run": str(run_dir), "net": net_label(cfg), "images": len(subset.train_y),
            "batch_size": cfg.trainer.batch_size, "seed": opts.seed, "checkpoints": points}


def _g(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def table(results) -> Table:
    r0 = results[0]
    t = Table(title=f"Training loss's Hessian, {r0['images']} training images, BN in train mode",
              caption="max eig.: top eigenvalue (Lanczos); 2/lr: edge of stability at the\n"
                      "checkpoint's lr; trace: Hutchinson estimate +- its standard error")
    for name, justify in (("net", "left"), ("step", "right"), ("lr", "right"), ("loss", "right"),
                          ("max eig.", "right"), ("2/lr", "right"), ("trace", "right")):
        t.add_column(name, justify=justify)
    for label, r in zip(labels(results), results):
        for i, c in enumerate(r["checkpoints"]):
            trace = f"{c['trace']:.3g}" + ("" if c["trace_se"] is None else f" +- {c['trace_se']:.2g}")
            t.add_row(label if i == 0 else "", str(c["step"]), _g(c["lr"]), _g(c["loss"]), _g(c["top_eigenvalue"]),
                      _g(c["edge"]), trace, end_section=i == len(r["checkpoints"]) - 1)
    return t


def figure(results, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = labels(results)
    fig, (eig, tr) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    edges = {tuple((c["step"], c["edge"]) for c in r["checkpoints"]) for r in results}
    for i, (r, name) in enumerate(zip(results, names)):
        colour = f"C{i % 10}"
        steps = [c["step"] for c in r["checkpoints"]]
        eig.plot(steps, [c["top_eigenvalue"] for c in r["checkpoints"]], "o-", color=colour, label=name)
        tr.errorbar(steps, [c["trace"] for c in r["checkpoints"]],
                    yerr=[c["trace_se"] or 0 for c in r["checkpoints"]], fmt="o-", color=colour, capsize=3,
                    label=name)
        if len(edges) > 1:  # each run its own lr schedule: its own line
            shown = [(c["step"], c["edge"]) for c in r["checkpoints"] if c["edge"] is not None]
            if shown:
                eig.plot(*zip(*shown), ":", color=colour, linewidth=1.2)
    if len(edges) == 1:
        shown = [(s, e) for s, e in next(iter(edges)) if e is not None]
        if shown:
            eig.plot(*zip(*shown), "k--", linewidth=1.2, label="2/lr (edge of stability)")
        momentum = {c["momentum"] for r in results for c in r["checkpoints"]}
        if shown and len(momentum) == 1 and (beta := momentum.pop()) is not None and beta > 0:
            eig.plot([s for s, _ in shown], [(1 + beta) * e for _, e in shown], "k:", linewidth=1.2,
                     label=f"(2 + 2 momentum)/lr, momentum {beta:g}")
    elif any(c["edge"] for r in results for c in r["checkpoints"]):
        eig.plot([], [], "k:", label="2/lr of each run (edge of stability)")
    positive = all(c["top_eigenvalue"] > 0 for r in results for c in r["checkpoints"])
    if positive:
        eig.set_yscale("log")
    eig.set_ylabel("top Hessian eigenvalue" + (" (log scale)" if positive else ""))
    eig.set_title("Sharpness (Lanczos) and the 2/lr line, checkpoint's lr")
    tr.set_ylabel("Hessian trace (Hutchinson, +- 1 s.e.)")
    tr.set_title("Trace: the sum of all curvatures")
    for ax in (eig, tr):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    r0 = results[0]
    fig.suptitle(f"Curvature of the training loss along training: {r0['images']} training images, BN in train mode")
    fig.savefig(out / FILES[0], dpi=150)
    plt.close(fig)


def parse_steps(p, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        steps = [int(s) for s in text.split(",")]
    except ValueError:
        steps = []
    if not steps or any(s < 0 for s in steps):
        p.error(f"--steps {text} is invalid; give checkpoint steps as integers separated by commas, e.g. 250,500")
    return steps


def main(args) -> int:
    p = run_parser("curvature", __doc__, FILES, "of the images, the Lanczos start and the probes", device=True)
    p.add_argument("--steps", metavar="STEP,...", help="the checkpoints' steps to look at (default: every "
                                                       "checkpoint the run kept)")
    p.add_argument("--images", type=int, help=f"training images the loss is measured on (default: {IMAGES}, or all "
                                               "where there are fewer)")
    p.add_argument("--lanczos", type=int, default=LANCZOS, help="most Hessian-vector products for the top "
                                                                 f"eigenvalue (default: {LANCZOS})")
    p.add_argument("--probes", type=int, default=PROBES, help=f"Rademacher probes for the trace (default: {PROBES})")
    opts = p.parse_args(args)
    check_positive(p, images=opts.images, lanczos=opts.lanczos, probes=opts.probes)
    steps = parse_steps(p, opts.steps)
    device = pick_device(opts.device)
    runs = [(Path(run), open_run(Path(run), "curvature")[0]) for run in opts.runs]
    picked = [picked_checkpoints(run, steps) for run, _ in runs]
    datasets = Datasets()
    for run, cfg in runs:
        check_images(opts.images, run, datasets(cfg.dataset))
    out = output_dir(opts.out, "curvature", FILES)  # claimed once every refusal has had its say
    with progress() as bar:
        results = [curvature_run(run, cfg, chosen, datasets(cfg.dataset), opts, device, bar)
                   for (run, cfg), chosen in zip(runs, picked)]
    text = save(out, results, FILES, lambda folder: figure(results, folder))
    if opts.json:
        print(text)
        return 0
    console.print(table(results))
    times = ", ".join(f"{name} {sum(c['seconds'] for c in r['checkpoints']):.0f} s"
                      for name, r in zip(labels(results), results))
    console.print(f"{opts.lanczos} Lanczos steps at most, {opts.probes} probes: {times}", highlight=False)
    console.print(f"wrote {out}/: {' '.join(FILES)}", highlight=False, soft_wrap=True)
    return 0
