"""The training step as one captured graph: CUDA's real graphs, and an emulation of them on the CPU.

`GraphedStep` runs a TrainStep a few times eagerly on a side stream, captures it once, then replays the
capture on every call. It talks to a backend: `cuda.CudaGraphs` (torch.cuda on one device) or
`EmulatedGraphs` (`trainer.cuda_graph=emulate`, the CPU), which behaves like a CUDA graph where it matters
to a training loop: a capture records the step's tensor operations without changing any tensor that
existed before it, every Python value is frozen at capture, a replay re-runs only the recorded operations
on the same tensors (random operations draw anew from the default generator, as CUDA's graph-safe one
does), and what a real capture refuses fails: a read back to the host (`.item()`, `.tolist()`, `.cpu()`,
a boolean mask, ops whose output size depends on the data: nonzero, bincount, unique_consecutive,
repeat_interleave without output_size), a tensor made from host data (`torch.tensor(0.5)`), and an
explicit generator. So a loop that is wrong under a real graph (a schedule that rebinds the lr tensor
instead of filling it, a Python counter, a value read on the host inside the step) is wrong under the
emulation too, and the CPU tests see it. What it cannot model (a CPU tensor read by a GPU kernel, streams,
the memory pool) is tested against tests/fake_cuda.py, and docs/speed.md lists it.
"""
import contextlib
import warnings

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import UserError
from ..console import err_console


class _NoStream:
    def wait_stream(self, other) -> None:
        pass


# Ops whose result is a host value, or whose output shape depends on the data (a device-to-host sync):
# cudaStreamCapture refuses them (each seen refused on an H200, torch 2.11: docs/speed.md).
_HOST_READS = {"aten::_local_scalar_dense", "aten::is_nonzero", "aten::equal", "aten::nonzero",
               "aten::masked_select", "aten::unique_dim", "aten::_unique2", "aten::allclose", "aten::bincount",
               "aten::unique_consecutive", "aten::unique_dim_consecutive", "aten::_unique", "aten::histc"}
# Tensor methods that hand a tensor's values to Python (on the CPU they dispatch no op a capture could see).
_HOST_METHODS = {torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.item,
                 torch.Tensor.__bool__, torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__}


def _refusal(func, args, kwargs) -> str | None:
    """Why a real capture would refuse this aten op, or None."""
    schema = func._schema
    if schema.name in _HOST_READS or not all(_device_value(r.type) for r in schema.returns):
        return f"{schema.name} reads a tensor back to the host"
    if schema.name == "aten::repeat_interleave" and kwargs.get("output_size") is None and len(args) < 4:
        return "aten::repeat_interleave without output_size reads its size back to the host"
    if schema.name == "aten::index" and any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                                            for i in (args[1] if len(args) > 1 else [])):
        return "a boolean mask index reads its size back to the host"
    if schema.name == "aten::lift_fresh":
        return "torch.tensor() inside the step copies host memory"
    if any(isinstance(v, torch.Generator) for v in (*args, *kwargs.values())):
        return f"{schema.name} draws from an explicit generator, which a capture does not register"
    return None


class _HostCalls(TorchFunctionMode):
    """Refuses, inside an emulated capture, the Tensor methods that give values to Python."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _HOST_METHODS:
            raise RuntimeError(f"Tensor.{func.__name__} reads a tensor back to the host: operation not permitted "
                               "when stream is capturing")
        return func(*args, **(kwargs or {}))


def _device_value(return_type) -> bool:
    """A schema return that stays on the device: tensors, lists of them, and handles such as c10d's Work."""
    text = str(return_type)
    return "Tensor" in text or text.startswith("__torch__.torch.classes.")


def _writes(argument) -> bool:
    """Whether an op writes this argument: its schema says so, or it is a batch norm's running statistics
    (native_batch_norm updates them in place without the schema's (a!) annotation)."""
    marked = argument.alias_info is not None and argument.alias_info.is_write
    return marked or argument.name in ("running_mean", "running_var")


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _wait(value) -> None:
    """Wait for c10d Work handles among an op's results (gloo's collectives run asynchronously)."""
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if hasattr(v, "wait") and not isinstance(v, torch.Tensor):
            v.wait()


def _fresh(out, fresh: list) -> list:
    """The results of an op (`out`, one tensor or a tuple of them) that are in new memory, `fresh` saying
    which of its schema's returns are."""
    results = out if isinstance(out, (tuple, list)) and len(fresh) > 1 else [out]
    return [r for r, new in zip(results, fresh) if new]


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _Recorder(TorchDispatchMode):
    """Records the aten ops of a capture as (op, args, kwargs, fresh results, which results are fresh). A
    fresh result (new memory) is a static buffer that each replay writes into, as a CUDA graph's private
    pool holds it; results that alias an argument need nothing, and an op that only makes a view of an
    argument is not recorded (the view follows its base). Before an op first writes a tensor from outside
    the capture, that tensor's storage is saved, so `restore()` can undo the capture's effects."""

    def __init__(self):
        super().__init__()
        self.ops, self.saved, self.inside = [], {}, set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        schema = func._schema
        if schema.name.startswith("profiler::"):  # record_function's markers: no work on the device
            return func(*args, **kwargs)
        refused = _refusal(func, args, kwargs)
        if refused:
            raise RuntimeError(f"{refused}: operation not permitted when stream is capturing")
        bound = [(a, args[i] if i < len(args) else kwargs.get(a.name)) for i, a in enumerate(schema.arguments)]
        written = [t for a, value in bound if _writes(a) for t in _tensors(value)]
        for t in written:
            key = _storage(t)
            if key and key not in self.inside and key not in self.saved:
                self.saved[key] = (t.untyped_storage(), t.untyped_storage().clone())
        out = func(*args, **kwargs)
        fresh = [r.alias_info is None for r in schema.returns]  # results in new memory, not an argument's
        if not written and not any(fresh):  # a view of an argument: it follows its base, nothing to re-run
            return out
        statics = _fresh(out, fresh)
        self.inside.update(_storage(t) for t in _tensors(statics))
        self.ops.append((func, args, kwargs, statics, fresh))
        return out

    def restore(self) -> None:
        for storage, copy in self.saved.values():
            storage.copy_(copy)
        self.saved.clear()


class RecordedGraph:
    """A CUDA graph's replay semantics for the CPU: see the module's docstring."""

    def __init__(self):
        self.ops = None

    def record(self, step) -> None:
        rng = torch.get_rng_state()
        recorder = _Recorder()
        try:
            with recorder, _HostCalls():
                step()
        finally:  # a capture runs nothing: the tensors and the random stream are as they were before it
            recorder.restore()
            torch.set_rng_state(rng)
        self.ops = recorder.ops

    def replay(self) -> None:
        with torch.no_grad():
            for func, args, kwargs, statics, fresh in self.ops:
                result = func(*args, **kwargs)
                _wait(result)
                for static, value in zip(_tensors(statics), _tensors(_fresh(result, fresh))):
                    static.copy_(value)


class EmulatedGraphs:
    """The backend of `trainer.cuda_graph=emulate`: RecordedGraph on the CPU, streams that do nothing."""

    def stream(self):
        return _NoStream()

    current_stream = stream

    def use(self, stream):
        return contextlib.nullcontext()

    def graph(self):
        return RecordedGraph()

    def capture(self, graph, step) -> None:
        graph.record(step)


class GraphedStep:
    """Runs a TrainStep as one graph: `eager_steps` real steps first (on a side stream, as CUDA graph
    capture needs: lazy initialisation, cudnn's algorithm search and the optimizer's momentum buffers
    happen there), then one capture, then a replay per call. Replays launch one graph instead of ~1000
    kernels, which is what a small net on a big GPU is bound by.

    A capture that fails stops the run with one line, or with `fallback` prints one line and trains
    eagerly from there; never under DDP (`ddp`), whose reducer, after a capture that failed inside
    backward, still waits for that step's reduction (Reducer::ensure_prior_reduction_finished).
    `state` says which happened: "pending", "captured" or "fell back: <reason>"."""

    def __init__(self, step, backend, eager_steps: int = 3, fallback: bool = False, ddp: bool = False):
        self.step, self.backend, self.eager_left = step, backend, eager_steps
        self.fallback, self.ddp = fallback and not ddp, ddp
        self.graph, self.eager, self.state = None, False, "pending"

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.eager:
            self.step()
        elif self.eager_left > 0:
            self.eager_left -= 1
            self._on_side_stream()
        else:
            self._capture()

    def _on_side_stream(self) -> None:
        side = self.backend.stream()
        side.wait_stream(self.backend.current_stream())
        with self.backend.use(side), warnings.catch_warnings():
            # A capturable Adam warns when it steps outside a capture: these steps come before the one.
            warnings.filterwarnings("ignore", message="This instance was constructed with capturable=True")
            self.step()
        self.backend.current_stream().wait_stream(side)

    def _capture(self) -> None:
        graph = self.backend.graph()
        self.step.optimizer.zero_grad(set_to_none=True)  # gradients are allocated inside the graph's pool
        try:
            self.backend.capture(graph, self.step)
        except Exception as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}" if str(e) else type(e).__name__
            if not self.fallback:
                under = " under DDP, which cannot fall back to eager after it" if self.ddp else ""
                raise UserError(f"CUDA graph capture failed{under} ({reason}); trainer.cuda_graph=false trains "
                                "without one") from None
            err_console.print(f"[yellow]warning:[/] CUDA graph capture failed ({reason}); training eagerly "
                              "(trainer.cuda_graph=false skips the attempt)", highlight=False, soft_wrap=True)
            self.state = f"fell back: {reason}"
            self.step.optimizer.zero_grad(set_to_none=True)
            self.eager = True
            self.step()
            return
        self.graph, self.state = graph, "captured"
        graph.replay()  # a capture records the step without running it
