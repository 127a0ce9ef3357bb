"""Where and how fast a run trains: its device, and the precision, layout, graph and determinism switches
with `auto` resolved for that device."""

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


def speed_modes(t, device: torch.device, model: torch.nn.Module | None = None) -> dict:
    """trainer.precision / channels_last / cuda_graph with `auto` resolved for this device: on CUDA bf16,
    channels_last and the graph; on the CPU channels_last where the model allows it (15-25% faster for
    ResNet-20), always fp32: bf16 autocast was slower on every CPU measured, AVX512-BF16 ones included
    (ResNet-20 28% slower at 32x32 on a 2-core Xeon without AMX; 9x on an AVX2 EPYC, which emulates it).
    cuda_graph is True, False or "emulate"."""
    cuda = device.type == "cuda"

    def pick(value, on_cuda, on_cpu):
        value = {"on": True, "off": False}.get(value, value)  # as typed on the command line
        return (on_cuda if cuda else on_cpu) if value == "auto" else value

    cpu_layout = model is not None and channels_last_safe(model)
    graph = pick(t.cuda_graph, True, False)
    return {"precision": pick(t.precision, "bf16", "fp32"),
            "channels_last": bool(pick(t.channels_last, True, cpu_layout)),
            "cuda_graph": graph if graph == "emulate" else bool(graph) and cuda, "compile": bool(t.compile)}


def set_determinism(deterministic: bool, device: torch.device) -> None:
    """`deterministic=true`: bit-identical runs (and resumes) on a GPU too, at the cost of cudnn's fastest
    algorithms. Otherwise cudnn.benchmark picks the fastest convolution algorithm for each shape."""
    if deterministic and device.type == "cuda":
        cuda.deterministic_env(CUBLAS_WORKSPACE)
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports inductor: 3 s
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
