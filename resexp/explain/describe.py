"""`resexp describe [overrides]`: how big and how costly each net is, in total and per stage.

Weighted layers (conv and linear layers outside shortcut connections, as the paper counts depth),
parameters, multiply-adds for one image (torch's FlopCounterMode counts a multiply-add as 2 FLOPs;
the paper's "FLOPs" are multiply-adds, so the counter's total is halved) and activation memory per
image. The net is built and run on the meta device, so even ResNet-152 at 224x224 costs no memory.
"""
import json

import torch
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UserError
from ..data import input_shape
from ..models import count_parameters, model_from_config
from ..models.parts import weighted_layers
from ..paper import published
from ..console import console
from .nets import nets, parse_args, parser

def parts(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The table's rows: (row name, top-level module names). Every stage (the net's `stages()`) is a row
    of its own; the other top-level modules form 'stem' before the first stage, 'head' after."""
    stages = {id(stage) for stage in model.stages()}
    rows, after_stage = [], False
    for name, child in model.named_children():
        if id(child) in stages:
            rows.append((name, [name]))
            after_stage = True
        elif rows and rows[-1][0] == ("head" if after_stage else "stem"):
            rows[-1][1].append(name)
        else:
            rows.append(("head" if after_stage else "stem", [name]))
    return rows


def measure(model: nn.Module, input_shape) -> dict:
    """Totals and per-part rows for one image of `input_shape` (C, H, W); `model` lives on the meta device."""
    owner = {}  # leaf module -> its top-level module's name
    for name, module in model.named_modules():
        if name and not list(module.children()):
            owner[module] = name.split(".")[0]
    outputs, last_shape = [], {}  # distinct output tensors (kept alive so ids stay unique), per top-level name

    def record(module, inputs, out):
        if isinstance(out, torch.Tensor) and all(out is not o for _, o in outputs):
            outputs.append((owner[module], out))

    def shape(name):
        return lambda module, inputs, out: last_shape.__setitem__(name, tuple(out.shape[1:]))

    hooks = [m.register_forward_hook(record) for m in owner]
    hooks += [child.register_forward_hook(shape(name)) for name, child in model.named_children()]
    counter = FlopCounterMode(display=False)
    model.eval()  # the same counts as in training mode, and batch norm runs faster on the meta device
    try:
        with counter, torch.no_grad():
            logits = model(torch.empty(1, *input_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    flops = counter.get_flop_counts()
    root = type(model).__name__
    counted = {id(m) for _, m in weighted_layers(model)}  # the depth's layers: not shortcuts, not gates
    rows = []
    for label, names in parts(model):
        modules = {n: getattr(model, n) for n in names}
        rows.append({
            "part": label,
            "layers": sum(id(m) in counted for top in modules.values() for m in top.modules()),
            "parameters": sum(count_parameters(m) for m in modules.values()),
            "mult_adds": sum(sum(flops.get(f"{root}.{n}", {}).values()) for n in names) // 2,
            "activation_bytes": sum(o.numel() * o.element_size() for n, o in outputs if n in names),
            "output": list(last_shape.get(names[-1], ())),
        })
    return {"input": list(input_shape), "layers": len(counted),
            "parameters": count_parameters(model), "mult_adds": counter.get_total_flops() // 2,
            "activation_bytes": sum(o.numel() * o.element_size() for _, o in outputs),
            "output": list(logits.shape[1:]), "parts": rows}


def describe_net(cfg, input_shape, num_classes) -> dict:
    with torch.device("meta"):
        model = model_from_config(cfg.model, cfg.depth, num_classes, input_shape[0])
    return measure(model, input_shape)


def si(n: float) -> str:
    """3 significant digits with a K/M/G suffix: 272474 -> '272K', 3.66e9 -> '3.66G'."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}"
    return f"{n:.3g}"


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def table(results: list[dict]) -> Table:
    inputs = {_dims(r["input"]) for r in results}
    t = Table(title=f"Multiply-adds (FlopCounterMode FLOPs / 2), one {' / '.join(sorted(inputs))} image")
    t.add_column("net / part")
    for column in ("layers", "params", "mult-adds", "output", "act. MiB"):
        t.add_column(column, justify="right")
    t.caption = "layers: conv and linear layers outside shortcuts and gates; act.: float32 layer outputs per image"
    top1 = [f"{r['net']} {r['paper_top1']:.2f}%" for r in results if "paper_top1" in r]
    if top1:
        t.caption += ("; the paper's ImageNet top-1 error (one model, 10-crop; He et al. 2015, Tables 2 and 3): "
                      + ", ".join(top1))
    for r in results:
        t.add_row(f"[bold]{r['net']}", str(r["layers"]), si(r["parameters"]), si(r["mult_adds"]),
                  _dims(r["output"]), f"{r['activation_bytes'] / 2**20:.2f}")
        for p in r["parts"]:
            t.add_row(f"  {p['part']}", str(p["layers"]), si(p["parameters"]), si(p["mult_adds"]),
                      _dims(p["output"]), f"{p['activation_bytes'] / 2**20:.2f}")
        t.add_section()
    return t


def paired(overrides: list[str]) -> list[list[str]]:
    """`model=vgg:19,imagenet_resnet:152` pairs each model with its own depth (a list of models crossed
    with a list of depths would ask for VGG-152): one set of overrides per pair, the others shared."""
    pairs = [o for o in overrides if o.startswith("model=") and ":" in o]
    if not pairs:
        return [overrides]
    rest = [o for o in overrides if o not in pairs]
    if any(o.startswith("depth=") for o in rest):
        raise UserError(f"{pairs[0]} gives each model its depth; leave out depth=")
    out = []
    for item in pairs[0].removeprefix("model=").split(","):
        model, _, depth = item.partition(":")
        if not depth:
            raise UserError(f"{pairs[0]}: {item} has no depth; write model:depth, e.g. vgg:19")
        out.append([*rest, f"model={model}", f"depth={depth}"])
    return out


def main(args) -> int:
    p = parser("describe", __doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, metavar="N",
                   help="pixels per side of the input (default: the dataset's; 224 for He et al.'s ImageNet figures)")
    p.add_argument("--classes", type=int, metavar="K", help="classifier outputs (default: the dataset's; ImageNet: 1000)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of a table")
    opts = parse_args(p, args)
    for flag, value in (("--image-size", opts.image_size), ("--classes", opts.classes)):
        if value is not None and value < 1:
            p.error(f"{flag} {value} is invalid; it must be a positive integer")
    jobs = [job for overrides in paired(opts.overrides) for job in nets(overrides, files=False)]
    results = []
    for label, cfg in jobs:
        channels, height, width, classes = input_shape(cfg.dataset)  # from the config: no files read
        if opts.image_size:
            height = width = opts.image_size
        result = describe_net(cfg, (channels, height, width), opts.classes or classes)
        imagenet = published("imagenet", cfg.model.name, cfg.depth, cfg.model)
        layout = cfg.model.get("layout")  # a family with two layouts (vgg) says which one the row is
        results.append({"net": f"{label} ({layout} layout)" if layout and "layout" not in label else label, **result,
                        **({"paper_top1": imagenet[0].error} if imagenet else {})})
    if opts.json:
        print(json.dumps(results, indent=1))
    else:
        console.print(table(results))
    return 0
