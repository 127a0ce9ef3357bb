"""Where and how fast a run trains: its device, and the precision, layout, graph and determinism switches
with `auto` resolved for that device."""
import json
import os
import platform
from pathlib import Path

import torch

from ..config import CUBLAS_WORKSPACE
from . import cuda, distributed


def pick_device(name: str) -> torch.device:
    return torch.device(distributed.resolve_device(name, torch.cuda.device_count(), distributed.device_slot()))


def channels_last_safe(model: torch.nn.Module) -> bool:
    """False where torch's CPU kernels hang in channels_last: a strided 1x1 convolution of < 8 input channels
    (seen with 2->6, 3->8, 4->8 and 6->16 channels, torch 2.13)."""
    return not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1
                   and m.in_channels < 8 for m in model.modules())


# What bf16 autocast did to ResNet-20's CPU step (batch 128, 32x32, channels_last) against fp32, measured
# with `resexp bench --device cpu` (docs/speed.md): with AMX 1.74x faster (Xeon); with AVX512-BF16 and no
# AMX, 1.58x faster on an AMD EPYC and 1.28x slower on a Xeon; without bf16 units 9x slower (emulated).
# So AMX means bf16, no units fp32, and AVX512-BF16 alone is decided by timing the run's own step.
CPU_BF16 = {"amx": "bf16", "none": "fp32", "avx512_bf16": "timed"}


def cpu_bf16_units() -> str:
    """What torch reports of this CPU's bf16 instructions: "amx", "avx512_bf16" or "none"."""
    if torch.cpu._is_amx_tile_supported():
        return "amx"
    return "avx512_bf16" if torch.cpu._is_avx512_bf16_supported() else "none"


def speed_modes(t, device: torch.device, model: torch.nn.Module | None = None) -> dict:
    """trainer.precision / channels_last / cuda_graph with `auto` resolved for this device: on CUDA bf16,
    channels_last and the graph; on the CPU channels_last where the model allows it (15-25% faster for
    ResNet-20), and the precision by the CPU's bf16 units (CPU_BF16; "timed" leaves it to the caller to
    time both). `precision_why` says why an `auto` precision was chosen. cuda_graph is True, False or
    "emulate"."""
    cuda = device.type == "cuda"

    def pick(value, on_cuda, on_cpu):
        value = {"on": True, "off": False}.get(value, value)  # as typed on the command line
        return (on_cuda if cuda else on_cpu) if value == "auto" else value

    cpu_layout = model is not None and channels_last_safe(model)
    graph = pick(t.cuda_graph, True, False)
    units = "cuda" if cuda else cpu_bf16_units()
    why = {"cuda": "CUDA", "amx": "AMX", "none": "no bf16 units", "avx512_bf16": "AVX512-BF16"}[units]
    return {"precision": pick(t.precision, "bf16", CPU_BF16.get(units)),
            "precision_why": f"auto: {why}" if t.precision == "auto" else None,
            "channels_last": bool(pick(t.channels_last, True, cpu_layout)),
            "cuda_graph": graph if graph == "emulate" else bool(graph) and cuda, "compile": bool(t.compile)}


def _cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resexp" / "precision.json"


def cpu_key(net: str) -> str:
    """What a timed precision choice holds for: this CPU, torch and thread count, and the net's step."""
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model} | torch {torch.__version__} | {torch.get_num_threads()} threads | {net}"


def remembered(key: str) -> dict | None:
    """A precision timed earlier on this machine for this key (from the user's cache), or None."""
    try:
        choice = json.loads(_cache_file().read_text()).get(key)
        ms = choice["ms_per_step"]
        known = choice["precision"] in ("fp32", "bf16") and ms["fp32"] > 0 and ms["bf16"] > 0
        return choice if known and isinstance(choice["bf16_non_finite"], bool) else None
    except (OSError, ValueError, AttributeError, KeyError, TypeError):  # none, or not a choice resexp wrote
        return None


def remember(key: str, choice: dict) -> None:
    """Keep a timed choice for later runs; a cache that cannot be written is only a cache."""
    path = _cache_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: it is resexp's own cache, so start it again
        known = {}
    known = {**(known if isinstance(known, dict) else {}), key: choice}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1) + "\n")
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


def share_cores(jobs: int) -> None:
    """A job training beside jobs-1 others on this CPU takes its share of the cores as threads: OpenMP
    threads of several processes on the same cores slow each other many times over."""
    if jobs > 1:
        torch.set_num_threads(max(1, distributed.cores() // jobs))


def sweep_split(jobs: int, at_once: int, gpus: int) -> str:
    """The line a parallel sweep starts with: how its jobs share this machine (as share_cores and
    distributed.resolve_device will give each job its threads or its GPU)."""
    at_once = min(distributed.at_once(at_once), jobs)
    if gpus:
        where = f"{gpus} GPU{'s' * (gpus > 1)}, {-(-at_once // gpus)} per GPU"
    else:
        threads = max(1, distributed.cores() // at_once) if at_once > 1 else torch.get_num_threads()
        where = f"{distributed.cores()} CPU cores, {threads} thread{'s' * (threads > 1)} each"
    return f"sweep of {jobs} job{'s' * (jobs > 1)}, {at_once} at once on {where}, the costliest first"


def set_determinism(deterministic: bool, device: torch.device) -> None:
    """`deterministic=true`: bit-identical runs (and resumes) on a GPU too, at the cost of cudnn's fastest
    algorithms. Otherwise cudnn.benchmark picks the fastest convolution algorithm for each shape."""
    if deterministic and device.type == "cuda":
        cuda.deterministic_env(CUBLAS_WORKSPACE)
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports inductor: 3 s
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
