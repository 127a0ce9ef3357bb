"""The end-of-sweep summary: the report's table of every job of the sweep, read back from its run
directories, and the count of jobs that did not finish (the sweep's exit code)."""
from pathlib import Path

from hydra.experimental.callback import Callback

from .status import STATUS_FILE


def unrecorded_jobs(sweep_dir: Path) -> list[Path]:
    """Job directories (`N_...`) without a status file: jobs that ended before recording one."""
    return [p for p in Path(sweep_dir).iterdir()
            if p.is_dir() and p.name.split("_")[0].isdigit() and not (p / STATUS_FILE).exists()]


class SweepSummary(Callback):
    """At the end of a multirun, one table of all its jobs; remembers how many did not finish."""

    unfinished = 0

    def on_multirun_end(self, config, **kwargs) -> None:
        from ..report.runs import load_runs  # the report's reading and table, one definition
        from ..report.tables import print_table
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = load_runs([], extra_dirs=[*(p.parent for p in sweep_dir.glob(f"*/{STATUS_FILE}")),
                                         *unrecorded_jobs(sweep_dir)])
        print_table(runs, f"sweep {sweep_dir}")
        SweepSummary.unfinished = sum(r["status"] != "finished" for r in runs)
        from .logger import write_sweep_layout  # torch is imported only once a sweep has run
        write_sweep_layout(sweep_dir)
