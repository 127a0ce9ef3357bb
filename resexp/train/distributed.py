"""Several processes, one run: torch.distributed as torchrun sets it up (RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR in the environment, `env://`). Rank 0 owns the run directory; the other ranks train in step
with it and write nothing. Without torchrun every function here is the one-process identity."""
import os

import torch
import torch.distributed as dist

from ..world import cores, launched, local_rank, rank, world_size  # noqa: F401  (the process's place, read once)
from . import cuda


def is_leader() -> bool:
    return rank() == 0


def resolve_device(name: str, cuda_count: int, slot: int = 0) -> str:
    """The device a process trains on. `auto` is the CUDA device `slot % cuda_count` when there are GPUs
    (slot: the local rank under torchrun, else the job number of a parallel sweep, so each job gets its
    own GPU and jobs beyond the GPU count share them round-robin), else the CPU. `cuda` is the same GPU as
    `auto` would pick, always with its index (torch.cuda.set_device refuses an unindexed "cuda":
    torch/cuda/_utils.py, _get_device_index with optional=False); anything else is taken as written."""
    if name == "auto":
        return f"cuda:{slot % cuda_count}" if cuda_count else "cpu"
    if name == "cuda":
        return f"cuda:{slot % max(cuda_count, 1)}"
    return name


def device_slot() -> int:
    """Local rank under torchrun; else the job number inside a Hydra multirun; else 0."""
    if world_size() > 1:
        return local_rank()
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return int(HydraConfig.get().job.num)
    return 0


def jobs_at_once() -> int:
    """How many jobs of this sweep train side by side (its launcher's n_jobs, as hydra/launcher=parallel
    sets it); 1 outside a sweep and for launchers that run one job at a time."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    if not HydraConfig.initialized() or world_size() > 1:
        return 1
    return at_once(OmegaConf.select(HydraConfig.get(), "launcher.n_jobs", default=1))


def at_once(n_jobs) -> int:
    """Jobs at once for a launcher's n_jobs (joblib's -1: one per core)."""
    return cores() if n_jobs == -1 else max(1, int(n_jobs or 1))


def setup() -> None:
    """Join the process group once: NCCL for CUDA tensors, gloo for CPU ones (so `device=cpu` works on
    a GPU machine too); a no-op without torchrun."""
    if launched() and not dist.is_initialized():
        backend = cuda.join_settings(local_rank()) if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)


class Silent:
    """Stands in for the run's logger and progress bar on ranks other than 0: every call does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def share(obj):
    """Rank 0's `obj` on every rank (a run directory and config: small picklable things)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(values: torch.Tensor) -> torch.Tensor:
    """Every rank's 1-D `values` as rows of one [world, n] tensor: one collective per log point."""
    if world_size() == 1:
        return values[None]
    rows = [torch.empty_like(values) for _ in range(world_size())]
    dist.all_gather(rows, values)
    return torch.stack(rows)


def gather_objects(obj) -> list:
    """Every rank's `obj` (a dict of small host values and tensors), as a list in rank order. Tensors travel
    on the host, so no rank unpickles another's CUDA tensors onto a GPU (a CUDA context on every GPU)."""
    obj = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in obj.items()}
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum of `values` over all ranks (in place); the identity for one process."""
    if world_size() > 1:
        dist.all_reduce(values)
    return values


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model in DistributedDataParallel (on CUDA built as a later capture of the step needs)."""
    if device.type == "cuda":
        return cuda.wrap_ddp(model, device)
    return torch.nn.parallel.DistributedDataParallel(model)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()

