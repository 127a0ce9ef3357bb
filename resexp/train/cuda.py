"""Every line of resexp that only a CUDA GPU runs: the run's current device, its random state and memory
counters, streams, a graph capture into a memory pool this code owns, DistributedDataParallel built on a
side stream, and the NCCL process group's settings. Elsewhere resexp asks torch.cuda only whether a GPU
is there (is_available, device_count), which runs on any machine.

Everything here reaches CUDA through three module attributes, `cuda` (torch.cuda), `allocator`
(torch._C, whose pool calls torch.cuda does not expose) and `ddp_class`. The CPU suite puts
tests/fake_cuda.py's recording fake in their place and runs every line, the fake checking at each call
what PyTorch checks there (an indexed device for set_device, capture on a non-default stream, a pool
handle, DDP built on a side stream and run 11 times before a capture, ...). docs/speed.md lists what
only a real GPU can show.
"""
import contextlib
import os

import torch

cuda = torch.cuda
allocator = torch._C
ddp_class = torch.nn.parallel.DistributedDataParallel

# PyTorch's CUDA notes, "Usage with DistributedDataParallel": capturing DDP's backward needs NCCL's async
# error handling off before the process group starts, DDP constructed on a side stream, and at least
# 11 DDP-enabled eager iterations before the capture.
DDP_EAGER_STEPS = 11
NCCL_SETTINGS = {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "0"}


def use_device(device: torch.device) -> None:
    """Make `device` (indexed, cuda:N) the current one: streams, captures and NCCL follow it."""
    cuda.set_device(device)


def join_settings(local_rank: int) -> str:
    """Before torch.distributed starts under torchrun on a GPU machine: this rank's GPU current, NCCL's
    settings for a captured DDP step in the environment (unless the user set them); the backend string,
    NCCL for CUDA tensors and gloo for CPU ones (so device=cpu works on a GPU machine too)."""
    cuda.set_device(local_rank % cuda.device_count())
    for key, value in NCCL_SETTINGS.items():
        os.environ.setdefault(key, value)
    return "cpu:gloo,cuda:nccl"


def deterministic_env(workspace: str) -> None:
    """cuBLAS is bit-reproducible only with a fixed workspace, read once per process."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", workspace)


def rng_state(device: torch.device) -> torch.Tensor:
    return cuda.get_rng_state(device)


def set_rng_state(state: torch.Tensor, device: torch.device) -> None:
    cuda.set_rng_state(state.cpu(), device)


def device_names() -> list[str]:
    return [cuda.get_device_name(i) for i in range(cuda.device_count())]


class PeakMemory:
    """The peak of GPU memory allocated from now on, above what is allocated now."""

    def __init__(self):
        self.before = cuda.memory_allocated()
        cuda.reset_peak_memory_stats()

    def gib(self) -> float:
        return (cuda.max_memory_allocated() - self.before) / 2**30


@contextlib.contextmanager
def side_stream(device: torch.device):
    """Work on a fresh stream that first waits for the current one; afterwards the current one waits for
    it. What DDP's construction and a capture need (neither may use the default stream)."""
    side = cuda.Stream(device)
    side.wait_stream(cuda.current_stream(device))
    with cuda.stream(side):
        yield
    cuda.current_stream(device).wait_stream(side)


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model in DistributedDataParallel, built on a side stream (the CUDA notes' condition for a later
    capture of the step)."""
    with side_stream(device):
        ddp = ddp_class(model, device_ids=[device])
    return ddp


class CudaGraphs:
    """The GraphedStep backend for torch.cuda's graphs on the run's device (already current)."""

    def __init__(self, device: torch.device, check_liveness: bool = False):
        self.device, self.check_liveness = device, check_liveness

    def stream(self):
        return cuda.Stream(self.device)

    def current_stream(self):
        return cuda.current_stream(self.device)

    def use(self, stream):
        return cuda.stream(stream)

    def graph(self):
        return cuda.CUDAGraph()

    def capture(self, graph, step) -> None:
        """Record `step` into `graph` on a fresh side stream, its memory in a pool this code owns (a handle
        from graph_pool_handle, so a failed capture can release it: CUDAGraph::pool() is refused before a
        capture has ended, CUDAGraph.cpp's TORCH_CHECK(capture_ended_)). Unlike torch.cuda.graph's context
        manager, a capture that fails leaves the process as it was: the caller's stream is current again,
        the stream is out of capture mode and the caching allocator no longer routes allocations to the
        pool. `check_liveness` (torch >= 2.13) also checks at each replay that the captured inputs live."""
        cuda.synchronize(self.device)
        pool = cuda.graph_pool_handle()
        liveness = {"check_input_liveness": True} if self.check_liveness else {}
        with side_stream(self.device):
            graph.capture_begin(pool=pool, **liveness)
            try:
                step()
                graph.capture_end()
            except BaseException:
                self._abandon(graph, pool)
                raise

    def _abandon(self, graph, pool) -> None:
        """After a failed capture. capture_end ends the stream's capture; when it succeeds the graph owns
        the pool and releases it when it is destroyed (CUDAGraph::reset). When the capture was invalidated
        (a sync inside it), cudaStreamEndCapture fails and capture_end throws before the allocator's
        endAllocateToPool (CUDAGraph.cpp), leaving the allocator routing to the pool: a later empty_cache
        would hit TORCH_INTERNAL_ASSERT(captures_underway.empty()). Then end and release the pool here."""
        try:
            graph.capture_end()
        except Exception:  # noqa: BLE001  the capture's own error is the one the caller reports
            for undo in (allocator._cuda_endAllocateToPool, allocator._cuda_releasePool):
                with contextlib.suppress(Exception):
                    undo(self.device.index, pool)


def can_check_liveness() -> bool:
    """Whether this torch's CUDAGraph.capture_begin takes check_input_liveness (torch >= 2.13)."""
    import inspect
    return "check_input_liveness" in inspect.signature(torch.cuda.CUDAGraph.capture_begin).parameters
