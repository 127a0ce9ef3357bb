"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically, and read
back as data only (tensors and plain values): a checkpoint from elsewhere never runs code."""
import errno
import math
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..names import resume_arg
from . import cuda, distributed

CHECKPOINT_DIR = "checkpoints"


class CorruptCheckpoint(UserError):
    """A checkpoint that cannot be read back (cut short, garbage): an older one may stand in for it."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def checkpoint_paths(run_dir) -> list[Path]:
    """The run's checkpoints, oldest first (names sort by step)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    return sorted(folder.glob("step_*.pt")) if folder.is_dir() else []


def save_checkpoint(run_dir, state: dict, keep: int) -> Path:
    """Write `state` as checkpoints/step_NNNNNNNN.pt: temporary file, fsync, rename, so a crash
    mid-write leaves the previous checkpoint whole. Then keep only the newest `keep`."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    path = folder / checkpoint_name(state["step"])
    tmp = path.with_suffix(".pt.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        reason = "the disk is full" if e.errno == errno.ENOSPC else e.strerror or str(e)
        raise UserError(f"could not write checkpoint {path}: {reason}; free space or choose another "
                        f"output directory, then resume with: resexp train {resume_arg(run_dir)}") from None
    for old in checkpoint_paths(run_dir)[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: Path, device) -> dict:
    """The checkpoint's contents, unpickled with torch's weights-only loader: tensors, numbers, strings and
    containers of them. Anything else (a class, a function: code that unpickling would run) is refused."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" not in str(e).lower():  # garbage, not a refused class or function
            raise CorruptCheckpoint(f"checkpoint {path} is corrupt or unreadable (UnpicklingError)") from None
        raise UserError(f"checkpoint {path} holds more than tensors and plain values (code would run if it were "
                        "loaded); refusing it: use checkpoints written by resexp only") from None
    except Exception as e:
        raise CorruptCheckpoint(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CorruptCheckpoint(f"checkpoint {path} is not a resexp checkpoint")
    return state


def load_newest(run_dir, device) -> tuple[Path, dict] | None:
    """(path, contents) of the run's newest checkpoint that reads back whole; None when it has none. A
    corrupt newer one is skipped with a warning line and left as it is (never deleted); when none reads
    back, one line naming the newest. A checkpoint refused as code is never skipped: it stops everything."""
    from ..console import err_console
    paths = checkpoint_paths(run_dir)
    errors = []
    for path in reversed(paths):
        try:
            state = load_checkpoint(path, device)
        except CorruptCheckpoint as e:
            errors.append(str(e))
            continue
        for error in errors:
            err_console.print(f"warning: {error}; using {path.name}, the newest intact one", highlight=False,
                              soft_wrap=True)
        return path, state
    if errors:
        raise UserError(f"{errors[0]}; no older intact checkpoint in {Path(run_dir) / CHECKPOINT_DIR}: "
                        "the run cannot continue from it (move the file away to start it again from step 0)")
    return None


def restore(module, state_dict, path, what: str) -> None:
    """load_state_dict with a one-line error when the checkpoint belongs to another architecture."""
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, ValueError, KeyError) as e:
        raise UserError(f"checkpoint {path} does not match this run's {what} "
                        f"({str(e).splitlines()[0][:120]}); it was saved by a different model or config") from None


@dataclass
class RunState:
    """What the loop itself carries from step to step and a resumed run needs besides the model, the
    optimizer, the schedule, the warm-up, the data order and the step's sums."""
    step: int = 0
    best_test_error: float = math.inf
    row: dict | None = None  # the last evaluation's metrics
    elapsed: float = 0.0     # seconds of training before this process started


def _rank_state(tr) -> dict:
    """What differs between ranks: each one's augmentation streams (CPU and its own GPU) and partial sums."""
    state = {"torch_rng": torch.get_rng_state(), **tr.step.state_dict()}
    if tr.device.type == "cuda":
        state["cuda_rng"] = cuda.rng_state(tr.device)
    return state


def save(run_dir, tr, run: RunState, elapsed: float, keep: int) -> None:
    """Checkpoint the Training `tr` and the loop's `run` state; under torchrun every rank takes part and
    rank 0 writes every rank's own state into the one file."""
    ranks = distributed.gather_objects(_rank_state(tr))
    if distributed.is_leader():
        state = {"model": tr.model.state_dict(), "optimizer": tr.optimizer.state_dict(),
                 "schedule": tr.schedule.state_dict(), "warmup": tr.warmup.state_dict(),
                 "generator": tr.generator.get_state(), "order": tr.order, **asdict(run), "elapsed": elapsed,
                 **ranks[0]}
        if len(ranks) > 1:
            state["ranks"] = ranks
        save_checkpoint(run_dir, state, keep)
    distributed.barrier()  # no rank moves on, or exits, before the checkpoint is on disk


def resume(run_dir, tr) -> RunState:
    """Restore `tr` from the run's newest checkpoint and return the loop's state; a fresh RunState when the
    run has none. Each rank takes its own saved streams and sums (rank 0's where the run had fewer ranks)."""
    newest = load_newest(run_dir, tr.device)
    if newest is None:
        return RunState()
    path, saved = newest
    ranks = saved.pop("ranks", [])
    saved.update(ranks[distributed.rank()] if distributed.rank() < len(ranks) else {})
    restore(tr.model, saved.pop("model"), path, "model")
    restore(tr.optimizer, saved.pop("optimizer"), path, "optimizer")
    tr.schedule.load_state_dict(saved.pop("schedule"))
    tr.warmup.load_state_dict(saved.pop("warmup"))
    tr.generator.set_state(saved.pop("generator").cpu())
    tr.order = saved.pop("order")
    torch.set_rng_state(saved.pop("torch_rng").cpu())
    cuda_rng = saved.pop("cuda_rng", None)
    if isinstance(cuda_rng, list):  # older checkpoints: every GPU's state, as rank 0 saw them
        cuda_rng = cuda_rng[tr.device.index] if tr.device.type == "cuda" and tr.device.index < len(cuda_rng) else None
    if cuda_rng is not None and tr.device.type == "cuda":
        cuda.set_rng_state(cuda_rng, tr.device)
    tr.step.load_state_dict({k: saved.pop(k) for k in ("since_log", "since_eval")}, saved["step"])
    return RunState(**{k: saved[k] for k in RunState.__dataclass_fields__ if k in saved})
