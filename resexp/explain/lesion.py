"""`resexp lesion RUN [RUN ...]`: the test error of a trained net with blocks deleted at test time.

Veit et al. 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow Networks": delete each
block in turn, then k random blocks at once (k = 1..n, a few draws each), and evaluate the test split.
A residual block is replaced by its own shortcut (the identity, or the zero-padding or projection where
the dimensions change); a plain block whose input and output shapes match is replaced by the identity,
and one that changes the shape cannot be deleted. The blocks are the children of the net's stages (what
its `stages()` returns). Runs on the CPU from the run's newest checkpoint and its own config.
"""
import math
import random
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.table import Table
from torch import nn

from ..console import console
from ..errors import UserError
from ..models.residual import shortcut_of
from ..track.status import read_status
from ..train.evaluate import evaluate
from .nets import (Datasets, check_positive, labels, net_label, open_run, output_dir, run_parser, save,
                   trained_model)

FILES = ("lesion.png", "lesion.json")


@dataclass
class Block:
    name: str                        # e.g. stage2.0
    stage: nn.Sequential
    index: int
    module: nn.Module
    replacement: nn.Module | None    # what stands in for it when deleted; None: it changes the shape


def find_blocks(model: nn.Module, x) -> list[Block]:
    """Every child of the net's stages, in forward order, with what replaces it when deleted."""
    names = {id(module): name for name, module in model.named_modules()}
    candidates = [(f"{names[id(stage)]}.{i}", stage, i, block) for stage in model.stages()
                  for i, block in enumerate(stage)]
    same_shape = {}
    hooks = [block.register_forward_hook(
        lambda m, inputs, out: same_shape.__setitem__(m, inputs[0].shape == out.shape)) for *_, block in candidates]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    blocks = []
    for name, stage, i, block in candidates:
        if shortcut_of(block) is not None:
            replacement = shortcut_of(block)
        else:
            replacement = nn.Identity() if same_shape[block] else None
        blocks.append(Block(name, stage, i, block, replacement))
    return blocks


@contextmanager
def deleted(blocks):
    """The net with `blocks` replaced by their stand-ins; put back afterwards."""
    for b in blocks:
        b.stage[b.index] = b.replacement
    try:
        yield
    finally:
        for b in blocks:
            b.stage[b.index] = b.module


def check_deletable(run_dir: Path, cfg, data) -> None:
    """A lesion needs blocks that can be deleted: residual blocks, or blocks that keep their input's shape.
    One line for a net without any (a DenseNet, whose every layer widens its input)."""
    from ..models import model_from_config
    model = model_from_config(cfg.model, cfg.depth, data.num_classes, data.in_channels)
    if not any(b.replacement is not None for b in find_blocks(model, data.normalize(data.test_x[:2]))):
        raise UserError(f"{run_dir}: {net_label(cfg)} has no block that can be deleted (none is residual or keeps "
                        "its input's shape); lesion studies nets such as resnet, plain or highway")


def lesion_run(run_dir: Path, cfg, checkpoint: Path, data, draws: int, max_k: int | None, seed: int) -> dict:
    model = trained_model(cfg, checkpoint, data)
    batch = cfg.trainer.eval_batch_size

    def error(blocks=()):
        with deleted(blocks):
            return evaluate(model, data, batch)[0]

    blocks = find_blocks(model, data.normalize(data.test_x[:2]))
    deletable = [b for b in blocks if b.replacement is not None]
    rng = random.Random(seed)
    by_k = []
    for k in range(1, min(max_k or len(deletable), len(deletable)) + 1):
        errors = [error(rng.sample(deletable, k)) for _ in range(draws)]
        by_k.append({"k": k, "errors": errors, "mean": statistics.fmean(errors), "min": min(errors),
                     "max": max(errors)})
    status = read_status(run_dir) or {}
    return {"run": str(run_dir), "net": net_label(cfg), "checkpoint": checkpoint.name,
            "final_test_error": status.get("final_test_error"), "intact_error": error(),
            "blocks": [{"name": b.name, "deleted_as": _kind(b), "error": error([b]) if b.replacement else None}
                       for b in blocks],
            "random": by_k}


def _kind(block: Block) -> str:
    if block.replacement is None:
        return "kept (changes shape)"
    return "shortcut" if block.replacement is shortcut_of(block.module) else "identity"


def _cell(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def tables(results, draws: int) -> tuple[Table, Table]:
    columns = labels(results)
    single = Table(title="Test error (%) with one block deleted", min_width=44)
    single.add_column("deleted")
    for label in columns:
        single.add_column(label, justify="right")
    single.add_row("none", *(_cell(r["intact_error"]) for r in results))
    names = list(dict.fromkeys(b["name"] for r in results for b in r["blocks"]))
    for name in names:
        found = [next((b for b in r["blocks"] if b["name"] == name), None) for r in results]
        single.add_row(name, *("" if b is None else _cell(b["error"]) for b in found))  # "": the net has no such block
    single.caption = "-: changes the shape, kept"
    randoms = Table(title=f"Test error (%) with k random blocks deleted, mean (min-max) of {draws} draws",
                    min_width=76)
    randoms.add_column("k", justify="right")
    for label in columns:
        randoms.add_column(label, justify="right")
    for k in range(1, max((len(r["random"]) for r in results), default=0) + 1):
        cells = []
        for r in results:
            row = r["random"][k - 1] if k <= len(r["random"]) else None
            cells.append("" if row is None else f"{row['mean']:.1f} ({row['min']:.1f}-{row['max']:.1f})")
        randoms.add_row(str(k), *cells)
    return single, randoms


def figure(results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (single, randoms) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True, layout="constrained")
    for r, label, colour in zip(results, labels(results), plt.get_cmap("tab10").colors * 3):
        position = range(1, len(r["blocks"]) + 1)
        errors = [math.nan if b["error"] is None else b["error"] for b in r["blocks"]]
        single.plot(position, errors, "o-", color=colour, markersize=3, linewidth=1.2, label=label)
        single.axhline(r["intact_error"], color=colour, linestyle=":", linewidth=1)
        ks = [row["k"] for row in r["random"]]
        randoms.plot(ks, [row["mean"] for row in r["random"]], "o-", color=colour, markersize=3, linewidth=1.2)
        randoms.fill_between(ks, [row["min"] for row in r["random"]], [row["max"] for row in r["random"]],
                             color=colour, alpha=0.2, linewidth=0)
    for position, b in enumerate(results[0]["blocks"], start=1):
        if b["name"].endswith(".0") and position > 1:  # a stage's first block: where the map shrinks
            single.axvline(position, color="grey", linewidth=0.8, alpha=0.5)
    single.set_title("one block deleted (dotted: none; grey: a stage begins)")
    single.set_xlabel("deleted block (input → output)")
    single.set_ylabel("test error (%)")
    randoms.set_title("k random blocks deleted (mean, min-max band)")
    randoms.set_xlabel("blocks deleted, k")
    for ax in (single, randoms):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 100)
    fig.legend(loc="outside right center", fontsize="small")
    fig.suptitle("Lesion study (Veit et al. 2016): deleting blocks of a trained net at test time")
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(args) -> int:
    p = run_parser("lesion", __doc__, FILES, "of the random subsets")
    p.add_argument("--draws", type=int, default=3, help="random subsets per k (default: 3)")
    p.add_argument("--max-k", type=int, metavar="K", help="largest number of random deletions (default: all blocks)")
    opts = p.parse_args(args)
    check_positive(p, draws=opts.draws, max_k=opts.max_k)
    runs = [(Path(run), *open_run(Path(run), "lesion")) for run in opts.runs]
    datasets = Datasets()
    for run, cfg, _ in runs:
        check_deletable(run, cfg, datasets(cfg.dataset))
    out = output_dir(opts.out, "lesion", FILES)
    results = [lesion_run(run, cfg, checkpoint, datasets(cfg.dataset), opts.draws, opts.max_k, opts.seed)
               for run, cfg, checkpoint in runs]
    text = save(out, results, FILES, lambda folder: figure(results, folder / FILES[0]))
    if opts.json:
        print(text)
        return 0
    for t in tables(results, opts.draws):
        console.print(t)
    finals = ", ".join(f"{label} {_cell(r['final_test_error'])}" for label, r in zip(labels(results), results))
    console.print(f"the runs' own final test error (status.json): {finals}", highlight=False)
    console.print(f"wrote {out}/: {' '.join(FILES)}", highlight=False, soft_wrap=True)
    return 0
