"""One Hydra job: validate, claim the run directory, train, record the outcome."""
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from ..config import validate
from ..errors import UserError, debug_enabled
from ..track.progress import console
from ..track.status import STATUS_FILE, write_status
from ..track.summary import run_row, summary_table
from .loop import train


def claim_run_dir(cfg) -> Path:
    """The job's output directory, refusing one that already holds a run (nothing is overwritten)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if (run_dir / STATUS_FILE).exists():
        raise UserError(f"run directory {run_dir} already holds a run; choose another hydra.run.dir "
                        "(or hydra.sweep.dir) instead of overwriting it")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    OmegaConf.save(OmegaConf.create(list(HydraConfig.get().overrides.task)), run_dir / "overrides.yaml")
    return run_dir


def run_job(cfg) -> int:
    """Run one training job; returns its exit code (0 finished, 1 failed, 2 bad input)."""
    run_dir = None
    try:
        validate(cfg)
        run_dir = claim_run_dir(cfg)
        write_status(run_dir, "running", started=time.time())
        result = train(cfg, run_dir)
    except UserError as e:
        if debug_enabled():
            raise
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        if run_dir is not None:
            write_status(run_dir, "failed", error=str(e))
        return 2
    except Exception as e:  # a failed job is recorded, not lost; RESEXP_DEBUG=1 shows the traceback
        if debug_enabled():
            raise
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        console.print(f"[bold red]error:[/] {message} (RESEXP_DEBUG=1 shows the traceback)", soft_wrap=True)
        if run_dir is not None:
            write_status(run_dir, "failed", error=message)
        return 1
    write_status(run_dir, "finished", **result)
    console.print(summary_table([run_row(run_dir)], f"run {run_dir}"))
    return 0
