"""+logger=mlflow: a sweep read back from the store through MLflow's own client, a single run with the
report's artifacts, a missing package as one line."""
import json
import sys

from mlflow import MlflowClient

import resexp
from resexp.cli import main
from tests.conftest import TINY, refused

JOBS = ("0_plain8", "1_resnet8-A", "2_plain14", "3_resnet14-A")


def _runs(store):
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("resexp")
    return client, {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


def test_a_sweep_is_a_parent_run_with_its_jobs_nested(logged_sweep):
    client, runs = _runs(logged_sweep / "runs/mlflow/mlflow.db")
    assert set(runs) == {"sweep sweep", *JOBS}
    parent = runs["sweep sweep"]
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} >= {
        "report/degradation.png", "report/summary.csv", "report/summary.md"}
    for name in JOBS:
        run, record = runs[name], logged_sweep / "sweep" / name
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id and run.info.status == "FINISHED"
        config = {"model.name": "resnet" if "resnet" in name else "plain", "depth": "14" if "14" in name else "8"}
        assert {k: run.data.params[k] for k in config} == config
        assert run.data.params["seed"] == "0" and run.data.params["dataset.name"] == "synthetic"
        assert "logger" not in run.data.params and "hydra.sweep.dir" not in run.data.params
        metrics = [json.loads(line) for line in (record / "metrics.jsonl").open()]
        for key, name_ in [("test_error", "test/error"), ("train_loss", "train/loss"), ("lr", "train/lr")]:
            history = client.get_metric_history(run.info.run_id, name_)
            assert [(m.step, m.value) for m in history] == [(m["step"], m[key]) for m in metrics]
        status = json.loads((record / "status.json").read_text())
        assert run.data.metrics["best_test_error"] == status["best_test_error"]
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.yaml"]


def test_logging_leaves_run_names_and_configs_as_they_are(logged_sweep):
    assert sorted(p.name for p in (logged_sweep / "sweep").iterdir() if p.is_dir()) == list(JOBS)
    assert "logger" not in (logged_sweep / "sweep/0_plain8/config.yaml").read_text()


def test_a_single_run_and_its_report_go_to_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "elsewhere/store.db"
    logged = [*TINY, "+logger=mlflow", f"hydra.callbacks.mlflow.tracking_uri=sqlite:///{store}"]
    run_dir = resexp.run(logged)["run_dir"]
    assert "logger" not in run_dir.name  # named by what the run is, not where it is logged
    client, runs = _runs(store)
    assert set(runs) == {run_dir.name} and "mlflow.parentRunId" not in runs[run_dir.name].data.tags
    first = runs[run_dir.name].info.run_id
    assert "report/degradation.png" in {a.path for a in client.list_artifacts(first, "report")}
    assert main(["train", f"resume={run_dir}", "trainer.epochs=2"]) == 0  # trained longer, without the logger
    resexp.run([*logged, f"hydra.run.dir='{run_dir}'", "trainer.epochs=2"])  # logged again: replaces its run
    client, runs = _runs(store)
    assert set(runs) == {run_dir.name} and runs[run_dir.name].info.run_id != first
    assert len(client.get_metric_history(runs[run_dir.name].info.run_id, "test/error")) == 2  # both epochs


def test_a_missing_mlflow_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # how Python marks a module that cannot be imported
    line = refused(capsys, "train", "-m", *TINY, "+logger=mlflow", "depth=8,14")
    assert line == "error: +logger=mlflow needs the package mlflow: pip install 'resexp[mlflow]'\n"
    assert not (tmp_path / "runs").exists()


def test_an_unknown_logger_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = refused(capsys, "train", *TINY, "+logger=mlfow")
    assert line == "error: logger=mlfow is not a known logger; did you mean mlflow? choose one of: mlflow\n"
