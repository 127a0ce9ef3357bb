"""`resexp signal [overrides]`: what the signal does at initialisation, block by block; no training.

For each net (a list of values gives one net per combination, as `resexp train -m` would run them),
built as a run with the same config builds it (same seed, same weights), on the first training batch
such a run takes on the CPU (the same images, normalized as training normalizes them, without
augmentation):

Signal propagation (Brock et al. 2021, "Characterizing signal propagation to close the performance
gap in unnormalized ResNets", sec. 3): the output of the stem and of every block of every stage (the
children of the net's stages(): residual units, plain blocks, a plain stack's layers), reduced per
channel over the batch and the pixels; the mean over channels of the squared channel mean, and of the
channel variance. Batch norm normalizes with the batch's statistics, as in training's first step.

Dynamical isometry (Pennington et al. 2017, "Resurrecting the sigmoid in deep learning through
dynamical isometry"): the singular values of each image's input-output Jacobian, from the image to the
output of each stage, computed exactly with torch.func (one forward-mode pass per input value, vmapped).
Batch norm normalizes with the batch's statistics, held fixed, so the Jacobian is that of the function
the net computes on this batch; dropout is off.
"""
import math

import torch
from rich.table import Table
from torch import nn

from ..console import console
from ..errors import UserError
from ..models.parts import WEIGHTED, main_path
from .nets import CPU, Datasets, finite, nets, output_dir, parse_args, parser, save

FILES = ("signal.png", "signal.json")
JACOBIAN_IMAGES = 4  # default --jacobian-images: 4 x 768 singular values per stage on the embedded dataset
# The Jacobians of one net are refused above either limit, before any work: its float32 entries (all
# images, all stages; about 1 GiB), and its multiply-adds (one forward pass per input value and image,
# plus the eigenvalues; about a minute of one CPU core, docs/explain.md).
MAX_ENTRIES = 2 ** 28
MAX_MULT_ADDS = 2e12
CHUNK = 128  # tangents per vmapped forward pass: bounds the memory at 128 images' activations


def _channel_stats(out: torch.Tensor) -> tuple[float, float]:
    """(mean over channels of the squared channel mean, mean over channels of the channel variance) of an
    N x C x ... output, each channel over its N x ... values; in float64."""
    per_channel = out.detach().double().transpose(0, 1).reshape(out.shape[1], -1)
    return per_channel.mean(1).square().mean().item(), per_channel.var(1, unbiased=False).mean().item()


@torch.no_grad()
def signal_stats(model: nn.Module, x: torch.Tensor) -> dict:
    """One forward pass of `x` in training mode; per point (the stem's output, then every block of every
    stage, input to output): its name, the conv and linear layers on the main path before it, and its
    output's average squared channel mean and average channel variance."""
    names = {id(m): name for name, m in model.named_modules()}
    stages = model.stages()
    blocks = [block for stage in stages for block in stage.children()]
    counted = {id(m) for _, m in main_path(model, WEIGHTED)}
    layers, rows = [0], []

    def count(module, inputs, out):
        layers[0] += id(module) in counted

    def record(name):
        return lambda module, inputs, out: rows.append((name, layers[0], *_channel_stats(out)))

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, WEIGHTED)]
    hooks.append(stages[0].register_forward_pre_hook(lambda module, inputs: rows.append(
        ("stem", layers[0], *_channel_stats(inputs[0])))))
    hooks += [block.register_forward_hook(record(names[id(block)])) for block in blocks]
    model.train()
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    points, depth, squared_mean, variance = map(list, zip(*rows))
    return {"points": points, "layers": depth, "squared_mean": squared_mean, "variance": variance}


@torch.no_grad()
def freeze_batch_statistics(model: nn.Module, x: torch.Tensor) -> None:
    """Every batch norm of `model` set to normalize with the statistics `x` gives it in training mode,
    held fixed (eval mode with those as its running statistics); the rest of the net in eval mode. The
    net then computes on `x` what training mode computes, one image at a time."""
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))]
    stats = {}

    def record(module, inputs):
        dims = [d for d in range(inputs[0].dim()) if d != 1]
        stats[module] = (inputs[0].mean(dims), inputs[0].var(dims, unbiased=False))

    hooks = [m.register_forward_pre_hook(record) for m in norms]
    model.train()
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    model.eval()
    for m in norms:
        m.running_mean, m.running_var = stats[m]


def jacobian_singular_values(model: nn.Module, x: torch.Tensor, points: list[nn.Module]) -> list[torch.Tensor]:
    """Per module of `points` (in the order the forward pass reaches them): the singular values of
    d(its output for image i) / d(image i), for each image of `x`, as one images x min(in, out) float64
    tensor. `model` is used as it is (train or eval mode): batch norm in training mode would mix images."""
    from torch.func import jvp, vmap

    outputs = []
    hooks = [p.register_forward_hook(lambda module, inputs, out: outputs.append(out)) for p in points]

    def forward(image):
        outputs.clear()
        model(image.unsqueeze(0))
        return tuple(o.flatten() for o in outputs)

    basis = torch.eye(x[0].numel(), dtype=x.dtype).view(-1, *x.shape[1:])
    spectra = [[] for _ in points]
    try:
        with torch.no_grad():
            for image in x:
                columns = vmap(lambda tangent: jvp(forward, (image,), (tangent,))[1], chunk_size=CHUNK)(basis)
                for spectrum, column in zip(spectra, columns, strict=True):
                    spectrum.append(singular_values(column.double()))  # J^T: the same singular values
    finally:
        for hook in hooks:
            hook.remove()
    return [torch.stack(s) for s in spectra]


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """A float64 matrix's min(rows, columns) singular values, descending, as the square roots of the
    eigenvalues of its smaller Gram matrix: an eighth of an SVD's time for a 768 x 4096 Jacobian, exact to
    about 1e-8 of the largest (the eigenvalues to 1e-16 of theirs); smaller ones come out as 0 or near it."""
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().flip(0)


def spectrum_summary(singular_values: torch.Tensor) -> dict:
    """The spectrum of J J^T (the squared singular values) by its mean m1 and its variance over m1^2,
    s1 = m2 / m1^2 - 1, as Pennington et al. 2017 describe it: isometry is m1 = 1 and s1 = 0 (every
    singular value 1); an image's zero singular values (units a ReLU switched off) count towards s1."""
    squares = singular_values.flatten().square()
    m1 = squares.mean().item()
    s1 = (squares.square().mean().item() / m1 ** 2 - 1) if m1 > 0 else math.nan
    return {"mean_square": m1, "spread": s1, "max": singular_values.max().item(),
            "median": singular_values.flatten().median().item()}


def jacobian_size(cfg, images: int) -> tuple[int, int, int, float]:
    """(inputs, outputs, entries, multiply-adds) of the Jacobians of one net, from its config alone (the
    net is built on the meta device): one forward pass per input value and image, and the Gram matrix and
    its eigenvalues for each image's Jacobian of each stage."""
    from ..data import input_shape
    from .describe import describe_net
    channels, height, width, classes = input_shape(cfg.dataset)
    described = describe_net(cfg, (channels, height, width), classes)
    inputs = channels * height * width
    stage_outputs = [math.prod(part["output"]) for part in described["parts"] if part["part"] not in ("stem", "head")]
    outputs = sum(stage_outputs)
    grams = sum(min(inputs, out) ** 2 * max(inputs, out) + min(inputs, out) ** 3 for out in stage_outputs)
    return inputs, outputs, inputs * outputs * images, images * (inputs * described["mult_adds"] + grams)


def check_size(label: str, cfg, images: int) -> None:
    inputs, outputs, entries, cost = jacobian_size(cfg, images)
    if entries > MAX_ENTRIES or cost > MAX_MULT_ADDS:
        raise UserError(f"the Jacobians of {label} are too large to compute here: {inputs:,} inputs x {outputs:,} "
                        f"stage outputs x {images} image{'s' * (images > 1)} = {entries / 1e6:,.0f}M entries, "
                        f"{cost:.1e} multiply-adds (at most {MAX_ENTRIES / 1e6:.0f}M and {MAX_MULT_ADDS:.0e}); "
                        "give fewer --jacobian-images (0: none) or a smaller dataset.image_size")


def measure(cfg, data, images: int, jacobian_images: int) -> dict:
    """Signal statistics and Jacobian spectra of the net `cfg` builds, at its init, on the first `images`
    training images a run with `cfg` takes (its first batch when `images` is its batch size)."""
    from ..models import model_from_config
    from .nets import training_subset
    torch.manual_seed(cfg.seed)  # as build_training: the run's own init
    model = model_from_config(cfg.model, cfg.depth, data.num_classes, data.in_channels)
    batch = training_subset(data, images, images, cfg.seed, CPU)  # the run's data order draws the same images
    x = batch.normalize(batch.train_x)
    result = {"images": images, **signal_stats(model, x)}
    if jacobian_images:
        freeze_batch_statistics(model, x)
        stages = model.stages()
        names = {id(m): name for name, m in model.named_modules()}
        depth = dict(zip(result["points"], result["layers"]))
        last_blocks = [names[id(list(stage.children())[-1])] for stage in stages]
        spectra = jacobian_singular_values(model, x[:jacobian_images], stages)
        result["jacobian"] = {
            "images": jacobian_images, "inputs": x[0].numel(),
            "stages": [{"stage": names[id(stage)], "layers": depth[last], **spectrum_summary(s),
                        "singular_values": [float(f"{v:.4g}") for v in s.flatten().sort(descending=True).values]}
                       for stage, last, s in zip(stages, last_blocks, spectra)]}
    return result


def table(results) -> Table:
    images = sorted({r["images"] for r in results})
    t = Table(title=f"Signal at initialisation, one batch of {'/'.join(map(str, images))} training images")
    t.add_column("net")
    for column in ("mean²", "var", "var/stem", "J m1", "J s1"):
        t.add_column(column, justify="right", no_wrap=True)
    t.caption = ("at the last block: mean² (var), the mean over channels of the squared channel mean "
                 "(channel variance); var/stem, its var over the stem's; J m1 (s1): the mean of the squared "
                 "singular values of the input-output Jacobian to the last stage (their variance / m1²)")
    for r in results:
        last = r.get("jacobian", {}).get("stages", [{}])[-1]
        growth = r["variance"][-1] / r["variance"][0] if r["variance"][0] else math.inf
        t.add_row(r["net"], f"{r['squared_mean'][-1]:.2e}", f"{r['variance'][-1]:.2e}", f"{growth:.2e}",
                  *(f"{last[key]:.2e}" if key in last else "-" for key in ("mean_square", "spread")))
    return t


def figure(results, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    jacobians = [r for r in results if "jacobian" in r]
    fig, axes = plt.subplots(2 if jacobians else 1, 2, figsize=(12, 9 if jacobians else 4.5), layout="constrained",
                             squeeze=False)
    (mean, var), (spectrum, spread) = axes if jacobians else (axes[0], (None, None))
    # an even number of nets (a sweep whose last key takes two values, e.g. model.norm=batch,none): each
    # consecutive pair in one hue, dark and light; otherwise ten distinct colours (as resexp gradients)
    paired = len(results) > 2 and len(results) % 2 == 0
    colours = plt.get_cmap("tab20" if paired or len(results) > 10 else "tab10").colors
    for r, colour in zip(results, colours * (1 + len(results) // len(colours))):
        mean.plot(r["layers"], r["squared_mean"], marker=".", markersize=3, linewidth=1.3, color=colour,
                  label=r["net"])
        var.plot(r["layers"], r["variance"], marker=".", markersize=3, linewidth=1.3, color=colour)
        if "jacobian" in r:
            stages = r["jacobian"]["stages"]
            values = stages[-1]["singular_values"]
            rms = math.sqrt(stages[-1]["mean_square"])  # the shape of the spectrum, whatever the net's gain
            spectrum.plot([i / len(values) for i in range(len(values))], [v / rms for v in values], linewidth=1.3,
                          color=colour)
            spread.plot([s["layers"] for s in stages], [s["spread"] for s in stages], marker="o", linewidth=1.3,
                        color=colour)
    labels = ((mean, "mean over channels of the squared channel mean"), (var, "mean over channels of the channel "
              "variance"), (spectrum, "singular value of the Jacobian to the last stage / √m1"),
              (spread, "s1: variance of the squared singular values / m1²"))
    for ax, what in labels:
        if ax is None:
            continue
        ax.set_yscale("log")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3, which="both")
        ax.set_xlabel("conv and linear layers before the point (its depth)")
    if jacobians:
        spectrum.set_xlabel("rank / number of singular values (all images, largest first)")
        spectrum.set_ylim(bottom=1e-6)  # (near) zero singular values, units a ReLU switched off, are left out
        spectrum.axhline(1, color="black", linewidth=0.8, linestyle="--")  # isometry: every one equal
        spectrum.set_title("Jacobian spectrum (dynamical isometry: all on the dashed line)", fontsize="medium")
        spread.set_title("Spread of the spectrum at the end of each stage", fontsize="medium")
    mean.set_title("Squared mean of the stem's and every block's output", fontsize="medium")
    var.set_title("Variance of the stem's and every block's output", fontsize="medium")
    fig.legend(loc="outside right center", fontsize="small")
    fig.suptitle("Signal propagation at initialisation (Brock et al. 2021; Pennington et al. 2017)")
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(args) -> int:
    p = parser("signal", __doc__.splitlines()[0])
    p.add_argument("--images", type=int, metavar="N", help="training images in the batch (default: the "
                                                             "run's trainer.batch_size, its first batch)")
    p.add_argument("--jacobian-images", type=int, metavar="K", default=JACOBIAN_IMAGES,
                   help=f"images of that batch whose Jacobians are taken (default: {JACOBIAN_IMAGES}; 0: none)")
    p.add_argument("--out", metavar="DIR", help="where signal.png and signal.json go "
                                                "(default: runs/explain/signal-DATE_TIME); never overwritten")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of a table")
    opts = parse_args(p, args)
    if opts.images is not None and opts.images < 2:
        p.error(f"--images {opts.images} is invalid; it must be at least 2 (a variance over the batch)")
    if opts.jacobian_images < 0:
        p.error(f"--jacobian-images {opts.jacobian_images} is invalid; it must be 0 or more")
    jobs = nets(opts.overrides)
    plans = []
    for label, cfg in jobs:  # every net checked before any work
        images = opts.images or cfg.trainer.batch_size
        if opts.jacobian_images > images:
            raise UserError(f"--jacobian-images {opts.jacobian_images} is more than the batch's {images} images; "
                            f"choose at most {images}")
        if opts.jacobian_images:
            check_size(label, cfg, opts.jacobian_images)
        plans.append((label, cfg, images))
    out = output_dir(opts.out, "signal", FILES)
    datasets = Datasets()
    for label, cfg, images in plans:
        if images > len(datasets(cfg.dataset).train_y):
            size = len(datasets(cfg.dataset).train_y)
            raise UserError(f"a batch of {images} images is more than the {size} training images of {label}'s "
                            f"dataset; give --images {size} or fewer")
    results = [{"net": label, **measure(cfg, datasets(cfg.dataset), images, opts.jacobian_images)}
               for label, cfg, images in plans]
    text = save(out, [finite(r) for r in results], FILES,
                lambda folder: figure(results, folder / FILES[0]))
    if opts.json:
        print(text)
    else:
        console.print(table(results))
        console.print(f"wrote {out}/: {' '.join(FILES)}", highlight=False, soft_wrap=True)
    return 0

