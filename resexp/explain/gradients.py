"""`resexp gradients [overrides]`: one forward and backward pass at initialisation, no training.

For each net (a list of values gives one net per combination, as `resexp train -m` would run them):
the L2 norm of every conv and linear layer's weight gradient and the std of its output, on the first
training batch a run with the same config would take (same seed, same images, same augmentation).
A table gives the ratio of the first layer's gradient norm to the last one's and the forward gain:
the std of the last layer's input over the std of the first layer's output (alpha**depth for
linear_deep with init=scaled_identity). The picture plots both per layer, log scale, one line per net.
"""
import math

from rich.table import Table
from torch import nn

from ..console import console
from .nets import CPU, Datasets, finite, nets, output_dir, parse_args, parser, save

FILES = ("gradients.png", "gradients.json")


def probe(tr) -> dict:
    """Per-layer weight-gradient norm and output std of step 1 of the Training `tr`, taken through the
    loop's own step (Training.advance): the same weights, batch, augmentation, precision and layout."""
    layers = [m for m in tr.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]  # GradNorms' layers
    out_std, in_std = {}, {}

    def record(module, inputs, out):
        out_std[module] = out.detach().double().std().item()
        in_std[module] = inputs[0].detach().double().std().item()

    hooks = [m.register_forward_hook(record) for m in layers]
    try:
        tr.advance(1)
    finally:
        for hook in hooks:
            hook.remove()
    norms = tr.step.norms.tolist()
    loss_sum, _, images = tr.step.last.tolist()
    return {"layers": [tag.split("/", 1)[1] for tag in tr.step.grad_norms.tags], "grad_norm": norms,
            "activation_std": [out_std.get(m, math.nan) for m in layers], "loss": loss_sum / images,
            "first_last_ratio": norms[0] / norms[-1] if norms[-1] else math.inf,
            "gain": in_std[layers[-1]] / out_std[layers[0]] if out_std[layers[0]] else math.inf}


def gradients_at_init(cfg, data) -> dict:
    """Step 1 of `resexp train` with this config, on the CPU."""
    from ..train.loop import build_training
    cfg = cfg.copy()
    cfg.device, cfg.trainer.cuda_graph = CPU, False
    return probe(build_training(cfg, data))


def table(results, batch_sizes) -> Table:
    t = Table(title=f"Gradients at initialisation, one batch of {'/'.join(map(str, sorted(batch_sizes)))} "
                    "training images")
    t.add_column("net")
    for column in ("loss", "|g| first", "|g| last", "ratio", "gain"):
        t.add_column(column, justify="right", no_wrap=True)
    t.caption = ("|g|: L2 norm of the first (last) layer's weight gradient; ratio: |g| first / |g| last; "
                 "gain: std of the last layer's input / std of the first layer's output")
    for r in results:
        t.add_row(r["net"], f"{r['loss']:.3g}", f"{r['grad_norm'][0]:.2e}",
                  f"{r['grad_norm'][-1]:.2e}", f"{r['first_last_ratio']:.2e}", f"{r['gain']:.2e}")
    return t


def figure(results, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (grad, act) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    # an even number of nets (a sweep whose last key takes two values, e.g. model.norm=batch,none): each
    # consecutive pair in one hue, dark and light; otherwise ten distinct colours
    paired = len(results) > 2 and len(results) % 2 == 0
    colours = plt.get_cmap("tab20" if paired or len(results) > 10 else "tab10").colors
    for r, colour in zip(results, colours * (1 + len(results) // len(colours))):
        index = range(len(r["layers"]))
        grad.plot(index, r["grad_norm"], linewidth=1.3, color=colour, label=r["net"])
        act.plot(index, r["activation_std"], linewidth=1.3, color=colour)
    for ax, what in ((grad, "L2 norm of the weight gradient"), (act, "std of the layer's output")):
        ax.set_yscale("log")
        ax.set_xlabel("layer index (input → output)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3, which="both")
    fig.legend(loc="outside right center", fontsize="small")
    fig.suptitle("One forward and backward pass at initialisation")
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(args) -> int:
    p = parser("gradients", __doc__.splitlines()[0])
    p.add_argument("--out", metavar="DIR", help="where gradients.png and gradients.json go "
                                                "(default: runs/explain/gradients-DATE_TIME); never overwritten")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of a table")
    opts = parse_args(p, args)
    jobs = nets(opts.overrides)
    out = output_dir(opts.out, "gradients", FILES)
    datasets = Datasets()
    results = [{"net": label, **gradients_at_init(cfg, datasets(cfg.dataset))} for label, cfg in jobs]
    text = save(out, [finite(r) for r in results], FILES,
                lambda folder: figure(results, folder / FILES[0]))
    if opts.json:
        print(text)
    else:
        console.print(table(results, {cfg.trainer.batch_size for _, cfg in jobs}))
        console.print(f"wrote {out}/: {' '.join(FILES)}", highlight=False, soft_wrap=True)
    return 0
