"""Runs in an MLflow store (`+logger=mlflow`, the extra `pip install 'resexp[mlflow]'`): a run directory's
record as one MLflow run (parameters, curves, config.yaml), a sweep as a parent run with its jobs nested.

Written through MLflow's client, never its global active run, so a notebook's own MLflow runs are left
alone. The store mirrors the run directories: a run logged again (a re-run sweep, a resumed run) replaces
its earlier MLflow run, found by a tag holding its directory.
"""
import hashlib
import time
from importlib.util import find_spec
from pathlib import Path

from ..errors import UserError

EXTRA = "pip install 'resexp[mlflow]'"
CALLBACK = "resexp.report.mlflow.MlflowLogger"  # conf/logger/mlflow.yaml's callback
# A run's and a sweep's directory (absolute) and its hash, by which a later log finds them again (a hash:
# MLflow's search filters take no quoting of arbitrary paths).
DIR_TAG, KEY_TAG = "resexp.dir", "resexp.key"
PARENT_TAG = "mlflow.parentRunId"  # how MLflow nests a run under another
STATUSES = {"finished": "FINISHED", "running": "RUNNING", "interrupted": "KILLED", "killed": "KILLED"}
# metrics.jsonl's keys -> MLflow metric names: TensorBoard's tags (track/logger.py)
CURVES = {"train_error": "train/error", "train_loss": "train/loss", "test_error": "test/error",
          "test_loss": "test/loss", "val_error": "val/error", "val_loss": "val/loss", "lr": "train/lr"}
# status.json's single numbers, logged at the run's last step
FINAL = ("best_test_error", "wall_time", "parameters")
BATCH = 1000  # MLflow's most metrics in one log_batch call


def check_installed(callbacks) -> None:
    """One line naming the extra when a `+logger=mlflow` callback is configured but its packages are not
    installed (a SQLite store also needs SQLAlchemy and alembic)."""
    for callback in (callbacks or {}).values():
        if callback.get("_target_") != CALLBACK:
            continue
        needed = ["mlflow", *(["sqlalchemy", "alembic"] if str(callback.tracking_uri).startswith("sqlite") else [])]
        absent = [name for name in needed if find_spec(name) is None]
        if absent:
            raise UserError(f"+logger=mlflow needs the package{'s' if len(absent) > 1 else ''} {', '.join(absent)}: "
                            f"{EXTRA}")


def _key(directory) -> str:
    return hashlib.sha1(str(Path(directory).resolve()).encode()).hexdigest()[:20]


class Store:
    """One experiment of an MLflow tracking store: `sqlite:///runs/mlflow/mlflow.db` (made with its folder
    when absent), a server (`http://...`) or any URI MLflow takes."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str):
        from mlflow import MlflowClient
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=Path(artifact_location).resolve().as_uri())

    def find(self, directory) -> str | None:
        """The id of the (undeleted) MLflow run logged for `directory`, if any."""
        runs = self.client.search_runs([self.experiment_id], f"tags.`{KEY_TAG}` = '{_key(directory)}'", max_results=1)
        return runs[0].info.run_id if runs else None

    def _create(self, directory, name: str, parent: str | None = None) -> str:
        tags = {DIR_TAG: str(Path(directory).resolve()), KEY_TAG: _key(directory), **({PARENT_TAG: parent} if parent else {})}
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def sweep(self, sweep_dir) -> str:
        """The parent run of the sweep in `sweep_dir`: the one logged before (a re-run sweep), else a new one."""
        return self.find(sweep_dir) or self._create(sweep_dir, f"sweep {Path(sweep_dir).name}")

    def log_run(self, record: dict, params: dict, parent: str | None = None) -> str:
        """A run directory's record (report/runs.load_run: status, flat config, metrics rows) as one MLflow
        run, nested under `parent`: `params`, the curves at their steps, the final numbers, config.yaml,
        and its status. Returns its id."""
        from mlflow.entities import Metric, Param, RunTag
        earlier = self.find(record["dir"])
        if earlier:  # the record has moved on since (resumed, re-run): replaced, not appended to
            self.client.delete_run(earlier)
        run_id = self._create(record["dir"], record["run"], parent)
        now = int(time.time() * 1000)
        metrics = [Metric(name, float(row[key]), now, row["step"]) for row in record["metrics"]
                   for key, name in CURVES.items() if isinstance(row.get(key), (int, float))]
        last = record["metrics"][-1]["step"] if record["metrics"] else 0
        metrics += [Metric(key, float(record[key]), now, record.get("steps") or last) for key in FINAL
                    if isinstance(record.get(key), (int, float))]
        tags = [RunTag("resexp.status", record["status"]), RunTag("resexp.family", record["family"]),
                *([RunTag("resexp.error", str(record["error"])[:5000])] if record.get("error") else [])]
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()], tags=tags)
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(run_id, metrics=metrics[start:start + BATCH])
        config = Path(record["dir"]) / "config.yaml"
        if config.exists():
            self.client.log_artifact(run_id, str(config))
        self.client.set_terminated(run_id, STATUSES.get(record["status"], "FAILED"))
        return run_id

    def log_folder(self, run_id: str, folder, path: str) -> None:
        """Every file of `folder` as artifacts of the run, under `path`."""
        self.client.log_artifacts(run_id, str(folder), path)

    def end(self, run_id: str, finished: bool) -> None:
        self.client.set_terminated(run_id, "FINISHED" if finished else "FAILED")
