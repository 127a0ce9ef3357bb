"""One Hydra job: validate, claim (or resume) the run directory, train, record the outcome."""
import os
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from ..config import resume_config, validate
from ..errors import UserError, debug_enabled
from ..console import console, err_console
from ..track.status import CONFIG_FILE, read_status, write_status
from ..report.runs import load_runs
from ..report.tables import print_table
from . import distributed
from .checkpoint import checkpoint_paths
from .interrupt import StopRequest
from .loop import Diverged, Interrupted, train

# Exit codes of `resexp train` besides 0 (finished) and 2 (bad input).
EXIT_FAILED, EXIT_DIVERGED = 1, 3


def _first_difference(a, b, prefix=""):
    """The first dotted key whose value differs between two plain containers, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def claim_run_dir(cfg):
    """(run directory, config to run). A directory that already holds a run is continued from its
    latest checkpoint when its config is the same (a re-run sweep job, `resume=`), and refused
    otherwise: nothing is ever overwritten."""
    if cfg.resume:
        run_dir = Path(cfg.resume)
        cfg = OmegaConf.load(resume_config(run_dir))
        validate(cfg)
    else:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    if read_status(run_dir) is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
        OmegaConf.save(OmegaConf.create(list(HydraConfig.get().overrides.task)), run_dir / "overrides.yaml")
        return run_dir, cfg
    saved = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE))
    difference = _first_difference({**saved, "resume": None},
                                    {**OmegaConf.to_container(cfg, resolve=True), "resume": None})
    if difference:
        key, old, new = difference
        raise UserError(f"run directory {run_dir} already holds a different run ({key}={old!r}, not {new!r}); "
                        "choose another hydra.run.dir / hydra.sweep.dir, or resume it as it is")
    if not checkpoint_paths(run_dir):
        raise UserError(f"run directory {run_dir} already holds a run with no checkpoint to resume from; "
                        "choose another hydra.run.dir / hydra.sweep.dir")
    console.print(f"resuming {run_dir} from {checkpoint_paths(run_dir)[-1].name}", highlight=False)
    return run_dir, cfg


def record_failure(run_dir, cfg, message: str) -> None:
    """Status `failed` with its one-line error. A job that failed before claiming its directory (its own
    validation, say) records it in Hydra's output directory with its config, so a sweep lists it too,
    unless that directory already holds a run: nothing is overwritten."""
    if run_dir is None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if cfg.get("resume") or read_status(run_dir) is not None or (run_dir / CONFIG_FILE).exists():
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
        except Exception:  # noqa: BLE001  an unresolvable config is saved as written
            OmegaConf.save(cfg, run_dir / CONFIG_FILE)
    write_status(run_dir, "failed", error=message)


def run_job(cfg) -> int:
    """Run one training job and record its status; returns its exit code."""
    run_dir = claimed = None
    try:
        distributed.setup()
        try:
            validate(cfg)
            run_dir, cfg = claim_run_dir(cfg)
            claimed = (str(run_dir), OmegaConf.to_container(cfg, resolve=True))
        finally:
            distributed.share(claimed)  # under torchrun the other ranks train this run, or stop on None
        write_status(run_dir, "running", started=time.time(), pid=os.getpid())
        with StopRequest() as stop:
            result = train(cfg, run_dir, stop)
    except Interrupted as e:
        write_status(run_dir, "interrupted", step=e.step)
        again = (f"torchrun --nproc_per_node={distributed.world_size()} -m resexp"
                 if distributed.world_size() > 1 else "resexp")
        console.print(f"[magenta]interrupted[/] at step {e.step}, checkpoint saved; continue with:\n"
                      f"  {again} train resume={run_dir}", highlight=False, soft_wrap=True)
        raise SystemExit(128 + e.signum) from None
    except Diverged as e:
        last = e.row or {}
        write_status(run_dir, "diverged", step=e.step, final_test_error=last.get("test_error"),
                     final_train_error=last.get("train_error"), last_finite_step=last.get("step"))
        console.print(f"[yellow]diverged[/]: non-finite or exploding loss or gradient at step {e.step}; "
                      f"last finite metrics kept in {run_dir}", highlight=False, soft_wrap=True)
        return EXIT_DIVERGED
    except UserError as e:
        if debug_enabled():
            raise
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        record_failure(run_dir, cfg, str(e))
        return 2
    except Exception as e:  # a failed job is recorded, not lost; RESEXP_DEBUG=1 shows the traceback
        if debug_enabled():
            raise
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        err_console.print(f"[bold red]error:[/] {message} (RESEXP_DEBUG=1 shows the traceback)", soft_wrap=True)
        record_failure(run_dir, cfg, message)
        return EXIT_FAILED
    write_status(run_dir, "finished", **result)
    print_table(load_runs([run_dir]), f"run {run_dir}")
    return 0


def follow_leader() -> int:
    """A rank other than 0 under torchrun: train rank 0's run (its directory and config) in step with it,
    writing nothing and printing nothing; rank 0 reports the outcome. Returns the exit code."""
    distributed.setup()
    claimed = distributed.share(None)
    if claimed is None:  # rank 0 refused the run and said why
        return 2
    run_dir, cfg = Path(claimed[0]), OmegaConf.create(claimed[1])
    try:
        with StopRequest() as stop:
            train(cfg, run_dir, stop)
    except Interrupted as e:
        return 128 + e.signum
    except Diverged:
        return EXIT_DIVERGED
    except UserError:
        return 2
    return 0
