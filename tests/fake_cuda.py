"""A recording fake of the CUDA calls resexp/train/cuda.py makes, for the CPU suite.

`FakeCuda` stands in for torch.cuda, `FakeAllocator` for torch._C's pool calls and `FakeDDP` for
DistributedDataParallel. Each call is recorded in `calls`, and each checks what PyTorch checks at that call
(the source named beside each check), so a line of cuda.py that would fail on a GPU fails here too. A
graph records the step's operations as resexp's emulation does (the step's tensors live on the CPU) and
replays them, so a loop driven through the fake trains and can be compared with an eager one.
"""
import contextlib
import os

import torch

from resexp.train.graphs import RecordedGraph, _HostCalls, _Recorder


class FakeStream:
    def __init__(self, fake, device, default=False):
        self.fake, self.device, self.default = fake, device, default

    def wait_stream(self, other) -> None:
        self.fake.calls.append(("wait_stream", self.default, other.default))


class FakeCuda:
    """torch.cuda as resexp calls it, on a machine with `count` GPUs."""

    def __init__(self, count: int = 1):
        self.count, self.current_device, self.calls = count, 0, []
        self.default = FakeStream(self, 0, default=True)
        self.current = self.default
        self.pools = {}          # pool handle -> use count (CUDACachingAllocator's graph_pools)
        self.capturing = set()   # pools allocations are routed to (captures_underway)
        self.ddps = []
        self.next_pool = 0
        self.peak = 0

    # devices ---------------------------------------------------------------------------------------
    def set_device(self, device) -> None:
        # torch/cuda/__init__.py set_device -> _utils._get_device_index(device, optional=False): a device
        # without an index is refused.
        if not isinstance(device, int):
            device = torch.device(device)
            if device.index is None:
                raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")
            device = device.index
        if not 0 <= device < self.count:  # cudaSetDevice: cudaErrorInvalidDevice
            raise RuntimeError("CUDA error: invalid device ordinal")
        self.calls.append(("set_device", device))
        self.current_device = device

    def device_count(self) -> int:
        return self.count

    def get_device_name(self, index: int) -> str:
        return f"Fake GPU {index}"

    def synchronize(self, device=None) -> None:
        self.calls.append(("synchronize", device))

    # random state and memory ---------------------------------------------------------------------------
    def get_rng_state(self, device) -> torch.Tensor:
        self._check_device(device)
        return torch.zeros(16, dtype=torch.uint8)

    def set_rng_state(self, state, device) -> None:
        # torch/cuda/random.py set_rng_state -> Generator.set_state: a CPU ByteTensor only
        if state.device.type != "cpu" or state.dtype != torch.uint8:
            raise TypeError("RNG state must be a torch.ByteTensor")
        self._check_device(device)
        self.calls.append(("set_rng_state", torch.device(device).index))

    def memory_allocated(self) -> int:
        return 2**30

    def reset_peak_memory_stats(self) -> None:
        self.peak = 2**30

    def max_memory_allocated(self) -> int:
        return self.peak + 2**29

    def _check_device(self, device) -> None:
        if torch.device(device).type != "cuda":
            raise ValueError(f"{device} is not a CUDA device")

    # streams -------------------------------------------------------------------------------------------
    def Stream(self, device=None):  # noqa: N802  torch.cuda's name
        return FakeStream(self, device)

    def current_stream(self, device=None):
        return self.current

    @contextlib.contextmanager
    def stream(self, stream):
        before, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = before

    # graphs --------------------------------------------------------------------------------------------
    def graph_pool_handle(self):
        # CUDAGraph.cpp: a user's pool handle sets only the second value.
        self.next_pool += 1
        return (0, self.next_pool)

    def CUDAGraph(self):  # noqa: N802
        return FakeGraph(self)

    def empty_cache(self) -> None:
        # CUDACachingAllocator.cpp emptyCache: TORCH_INTERNAL_ASSERT(captures_underway.empty(), ...)
        if self.capturing:
            raise RuntimeError("INTERNAL ASSERT FAILED: captures_underway.empty()")


class FakeAllocator:
    """torch._C's graph-pool calls (CUDACachingAllocator's endAllocateToPool and releasePool)."""

    def __init__(self, fake: FakeCuda):
        self.fake = fake

    def _cuda_endAllocateToPool(self, device, pool) -> None:  # noqa: N802
        # CUDACachingAllocator.cpp endAllocateToPool: the pool must be under capture
        if pool not in self.fake.capturing:
            raise RuntimeError("endAllocatePool: not currently recording to mempool_id")
        self.fake.capturing.discard(pool)
        self.fake.calls.append(("endAllocateToPool", device, pool))

    def _cuda_releasePool(self, device, pool) -> None:  # noqa: N802
        # CUDACachingAllocator.cpp releasePool: TORCH_INTERNAL_ASSERT(it != graph_pools.end()), then uc >= 0
        if pool not in self.fake.pools:
            raise RuntimeError("INTERNAL ASSERT FAILED: it != graph_pools.end()")
        self.fake.pools[pool] -= 1
        if self.fake.pools[pool] < 0:
            raise RuntimeError("INTERNAL ASSERT FAILED: uc >= 0")
        if self.fake.pools[pool] == 0:
            del self.fake.pools[pool]
        self.fake.calls.append(("releasePool", device, pool))


class _Capture(_Recorder):
    """The emulation's recorder, remembering that the capture was invalidated (CUDA invalidates a capture
    at the first operation it refuses)."""

    def __init__(self):
        super().__init__()
        self.invalid = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        try:
            return super().__torch_dispatch__(func, types, args, kwargs)
        except RuntimeError:
            self.invalid = True
            raise


class _Host(_HostCalls):
    def __init__(self, capture: _Capture):
        super().__init__()
        self.capture = capture

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            return super().__torch_function__(func, types, args, kwargs)
        except RuntimeError:
            self.capture.invalid = True
            raise


class FakeGraph:
    """torch.cuda.CUDAGraph, with CUDAGraph.cpp's checks."""

    def __init__(self, fake: FakeCuda):
        self.fake, self.ended, self.recorded, self.capture = fake, False, None, None

    def capture_begin(self, pool=None, capture_error_mode="global", check_input_liveness=False) -> None:
        f = self.fake
        # CUDAGraph.cpp capture_begin: TORCH_CHECK(stream != at::cuda::getDefaultCUDAStream(), ...)
        if f.current.default:
            raise RuntimeError("CUDA graphs must be captured on a non-default stream.")
        if check_input_liveness and "check_input_liveness" not in _capture_begin_parameters():
            raise TypeError("capture_begin() got an unexpected keyword argument 'check_input_liveness'")
        for ddp in f.ddps:
            # docs/source/notes/cuda.rst, "Usage with DistributedDataParallel": warmup must run at least
            # 11 DDP-enabled eager iterations before capture; NCCL async error handling off.
            if ddp.forwards < 11:
                raise RuntimeError(f"DDP captured after {ddp.forwards} eager iterations; at least 11 are needed")
        if f.ddps and os.environ.get("TORCH_NCCL_ASYNC_ERROR_HANDLING") != "0":
            raise RuntimeError("DDP captured with NCCL's async error handling on")
        self.stream, self.pool_id = f.current, pool if pool is not None else (f.graph_pool_handle()[1], 0)
        f.pools[self.pool_id] = f.pools.get(self.pool_id, 0) + 1  # beginAllocateToPool: create or incref
        f.capturing.add(self.pool_id)
        f.calls.append(("capture_begin", self.pool_id))
        self.capture = _Capture()
        self.host = _Host(self.capture)
        self.rng = torch.get_rng_state()
        self.capture.__enter__()
        self.host.__enter__()

    def capture_end(self) -> None:
        f = self.fake
        # CUDAGraph.cpp capture_end: TORCH_CHECK(stream == capture_stream_, "Capture must end on the same
        # stream it began on.")
        if f.current is not self.stream:
            raise RuntimeError("Capture must end on the same stream it began on.")
        if self.capture is None:
            raise RuntimeError("capture_end() called before capture_begin().")
        capture, self.capture = self.capture, None
        self.host.__exit__(None, None, None)
        capture.__exit__(None, None, None)
        capture.restore()
        torch.set_rng_state(self.rng)
        if capture.invalid:
            # AT_CUDA_CHECK(cudaStreamEndCapture(...)) throws before endAllocateToPool.
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
        f.capturing.discard(self.pool_id)
        self.recorded, self.ended = RecordedGraph(), True
        self.recorded.ops = capture.ops
        f.calls.append(("capture_end", self.pool_id))

    def pool(self):
        # CUDAGraph.cpp pool(): TORCH_CHECK(capture_ended_, ...)
        if not self.ended:
            raise RuntimeError("Called CUDAGraph::pool() without a preceding successful capture.")
        return self.pool_id

    def replay(self) -> None:
        # CUDAGraph.cpp replay(): TORCH_CHECK(capture_ended_, ...)
        if not self.ended:
            raise RuntimeError("Called CUDAGraph::replay without a preceding successful capture.")
        self.recorded.replay()


class FakeDDP(torch.nn.Module):
    """DistributedDataParallel as far as a capture cares: where it was built and how often it ran."""

    def __init__(self, fake: FakeCuda, module, device_ids):
        super().__init__()
        # docs/source/notes/cuda.rst, "Usage with DistributedDataParallel": DDP must be constructed in a
        # side-stream context before a full-backward capture.
        if fake.current.default:
            raise RuntimeError("DDP constructed on the default stream")
        if len(device_ids) != 1 or torch.device(device_ids[0]).index is None:
            raise ValueError("device_ids must name one indexed CUDA device")
        self.module, self.forwards = module, 0
        fake.ddps.append(self)

    def forward(self, *args):
        self.forwards += 1
        return self.module(*args)


def _capture_begin_parameters():
    import inspect
    return inspect.signature(torch.cuda.CUDAGraph.capture_begin).parameters


def install(monkeypatch, count: int = 1) -> FakeCuda:
    """Put a FakeCuda with `count` GPUs behind resexp/train/cuda.py; returns it."""
    from resexp.train import cuda
    fake = FakeCuda(count)
    monkeypatch.setattr(cuda, "cuda", fake)
    monkeypatch.setattr(cuda, "allocator", FakeAllocator(fake))
    monkeypatch.setattr(cuda, "ddp_class", lambda module, device_ids: FakeDDP(fake, module, device_ids))
    return fake
