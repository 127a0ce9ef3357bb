"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically."""
import errno
import os
from pathlib import Path

import torch

from ..errors import UserError

CHECKPOINT_DIR = "checkpoints"


def checkpoint_paths(run_dir) -> list[Path]:
    """The run's checkpoints, oldest first (names sort by step)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    return sorted(folder.glob("step_*.pt")) if folder.is_dir() else []


def save_checkpoint(run_dir, state: dict, keep: int) -> Path:
    """Write `state` as checkpoints/step_NNNNNNNN.pt: temporary file, fsync, rename, so a crash
    mid-write leaves the previous checkpoint whole. Then keep only the newest `keep`."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"step_{state['step']:08d}.pt"
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
                        f"output directory, then resume with: resexp train resume={run_dir}") from None
    for old in checkpoint_paths(run_dir)[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: Path, device) -> dict:
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); "
                        "delete it to resume from the one before, if any") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise UserError(f"checkpoint {path} is not a resexp checkpoint; delete it or point resume= elsewhere")
    return state


def restore(module, state_dict, path, what: str) -> None:
    """load_state_dict with a one-line error when the checkpoint belongs to another architecture."""
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, ValueError, KeyError) as e:
        raise UserError(f"checkpoint {path} does not match this run's {what} "
                        f"({str(e).splitlines()[0][:120]}); it was saved by a different model or config") from None
