"""`+logger=mlflow`: a Hydra callback that puts every run, and a sweep with its jobs nested, into an MLflow
store (track/mlflow.py), read back from the run directories as the report reads them, with the report's
figures and tables as the sweep's (or the single run's) artifacts.

A run reaches the store when its job ends (TensorBoard is the live view): its record is then whole, so the
store holds the same numbers as `resexp report`. A job refused before it made a run logs nothing.
"""
import logging
import tempfile
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode

from ..track.logger import identifying_hparams
from ..track.mlflow import Store
from ..track.status import STATUS_FILE
from . import figures, tables
from .runs import load_run, load_runs
from .summary import sweep_runs


def params(record: dict, overrides) -> dict:
    """The identifying keys (TensorBoard's HPARAMS: model, depth, shortcut, dataset, seed and every overridden
    key), without the keys that only say where or how a run is logged."""
    values = identifying_hparams(record["config"], [o for o in overrides if not o.lstrip("+~").startswith("hydra")])
    return {k: v for k, v in values.items() if k != "logger"}


def write_report(runs: list[dict], folder: Path, title: str) -> None:
    """The report's tables and figures of `runs` into `folder`, as `resexp report` writes them."""
    tables.write_markdown(runs, folder / "summary.md", title)
    tables.write_csv(runs, folder / "summary.csv")
    figures.degradation(runs, folder / "degradation.png")
    figures.depth(runs, folder / "depth.png")
    figures.grad_norms(runs, folder / "grad_norms.png")
    figures.responses(runs, folder / "responses.png")


class MlflowLogger(Callback):
    """Settings from conf/logger/mlflow.yaml: the store's URI, the experiment's name and where a new
    experiment keeps its artifacts."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str):
        self.settings = (str(tracking_uri), str(experiment), str(artifact_location))
        self.store = None
        self.run_id = self.run_dir = None  # the single run's, for its figures at the end

    def _store(self) -> Store:
        self.store = self.store or Store(*self.settings)
        return self.store

    def on_multirun_start(self, config, **kwargs) -> None:
        self._store().sweep(config.hydra.sweep.dir)  # the parent exists before any job logs under it

    def on_job_end(self, config, job_return, **kwargs) -> None:
        hydra = HydraConfig.get()
        run_dir = Path(config.get("resume") or hydra.runtime.output_dir)
        if not (run_dir / STATUS_FILE).exists():
            return
        multirun = hydra.mode == RunMode.MULTIRUN
        parent = self._store().sweep(hydra.sweep.dir) if multirun else None
        record = load_run(run_dir)
        self.run_id = self._store().log_run(record, params(record, hydra.overrides.task), parent)
        self.run_dir = run_dir

    def on_run_end(self, config, **kwargs) -> None:
        if self.run_id:
            self._log_report(self.run_id, load_runs([self.run_dir]), f"run {self.run_dir}")

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = sweep_runs(sweep_dir)
        parent = self._store().sweep(sweep_dir)
        if runs:
            self._log_report(parent, runs, f"sweep {sweep_dir}")
        self._store().end(parent, bool(runs) and all(r["status"] == "finished" for r in runs))

    def _log_report(self, run_id: str, runs: list[dict], title: str) -> None:
        # TensorBoard's reader warns of each event file it has read to the end; under Hydra's logging those
        # lines would be printed (`resexp report` configures no logging, so it shows none)
        logging.getLogger("tensorboard").setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as folder:
            write_report(runs, Path(folder), title)
            self._store().log_folder(run_id, folder, "report")
