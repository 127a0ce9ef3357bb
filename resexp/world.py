"""Where this process stands in a torchrun launch, read from the environment torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR), here only: without torchrun, rank 0 of 1. No torch import, so the
config checks and the train command read it before anything heavy loads."""
import os


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def launched() -> bool:
    """Started by torchrun (which sets RANK and MASTER_ADDR), with one process or several: the model then
    trains in DistributedDataParallel, as it would over several GPUs."""
    return "RANK" in os.environ and "MASTER_ADDR" in os.environ


def cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it, else every core)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
