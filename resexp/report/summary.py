"""The end of a sweep: one table of every job, read back from its run directories (the report's own
reading and table), and whether every job finished (the sweep's exit code)."""
from pathlib import Path

from hydra.experimental.callback import Callback

from ..track.status import STATUS_FILE


def unrecorded_jobs(sweep_dir: Path) -> list[Path]:
    """Job directories (`N_...`) without a status file: jobs that ended before recording one."""
    return [p for p in Path(sweep_dir).iterdir()
            if p.is_dir() and p.name.split("_")[0].isdigit() and not (p / STATUS_FILE).exists()]


def sweep_runs(sweep_dir) -> list[dict]:
    """Every job of the sweep in `sweep_dir`, recorded or not, as the report reads runs."""
    from .runs import load_runs
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    return load_runs([], extra_dirs=[*(p.parent for p in sweep_dir.glob(f"*/{STATUS_FILE}")),
                                     *unrecorded_jobs(sweep_dir)])


def all_finished(sweep_dir) -> bool:
    return all(r["status"] == "finished" for r in sweep_runs(sweep_dir))


class SweepSummary(Callback):
    """At the end of a multirun (in the process that launched it, whatever the launcher), one table of
    all its jobs. (TensorBoard's layout is in every run, so the sweep directory holds no run of its own.)"""

    def on_multirun_end(self, config, **kwargs) -> None:
        from .tables import print_table
        sweep_dir = Path(config.hydra.sweep.dir)
        print_table(sweep_runs(sweep_dir), f"sweep {sweep_dir}")
