"""resexp.load_runs and load_curves: the report's numbers as pandas tables; `import resexp` stays light."""
import csv
import json
import subprocess
import sys

import pandas as pd

import resexp
from resexp.cli import main


def test_import_resexp_loads_neither_torch_nor_pandas():
    code = "import sys, resexp; print(sorted(m for m in ('torch', 'pandas', 'hydra') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_the_degradation_pivot_holds_the_reports_numbers(logged_sweep, tmp_path):
    """The issue's check: a pivot of load_runs gives the numbers `resexp report` gives."""
    sweep = logged_sweep / "sweep"
    table = resexp.load_runs(sweep).pivot_table(index="depth", columns="family", values="final_test_error")
    assert main(["report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 4 and table.shape == (2, 2)
    for row in summary:
        assert table.loc[int(row["depth"]), row["family"]] == float(row["test_error_mean"])
    written = pd.read_csv(tmp_path / "report" / "runs.csv")  # the report's runs.csv is load_runs' table
    read = resexp.load_runs(sweep)
    assert list(written.columns) == list(read.columns) and list(written["run"]) == list(read["run"])
    for column in ("final_test_error", "best_test_loss", "parameters", "steps", "wall_time"):
        assert list(written[column]) == list(read[column])


def test_one_row_per_run_with_its_identity_and_record(logged_sweep):
    runs = resexp.load_runs(logged_sweep / "sweep")
    assert list(runs["run"]) == ["0_plain8", "2_plain14", "1_resnet8-A", "3_resnet14-A"]  # the report's order
    assert list(runs.columns[:7]) == ["run", "family", "model.name", "depth", "model.shortcut", "dataset.name", "seed"]
    for _, row in runs.iterrows():
        status = json.loads((logged_sweep / "sweep" / row["run"] / "status.json").read_text())
        metrics = [json.loads(line) for line in (logged_sweep / "sweep" / row["run"] / "metrics.jsonl").open()]
        assert row["status"] == "finished" and row["steps"] == status["steps"] == metrics[-1]["step"]
        assert row["final_test_error"] == status["final_test_error"]
        assert row["best_test_error"] == status["best_test_error"] == min(m["test_error"] for m in metrics)
        assert row["final_train_loss"] == metrics[-1]["train_loss"]
        assert row["best_test_loss"] == min(m["test_loss"] for m in metrics)
        assert row["parameters"] == status["parameters"] and row["wall_time"] == status["wall_time"]
    assert runs.loc[runs["run"] == "1_resnet8-A", "model.shortcut"].item() == "A"


def test_curves_in_long_form_are_the_metrics_rows(logged_sweep):
    curves = resexp.load_curves(logged_sweep / "sweep")
    assert list(curves.columns[-6:]) == ["step", "epoch", "time", "split", "metric", "value"]
    run = logged_sweep / "sweep" / "3_resnet14-A"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    mine = curves[curves["run"] == "3_resnet14-A"]
    assert set(mine["depth"]) == {14} and set(mine["family"]) == {"resnet-A"}
    for split, metric in [("train", "error"), ("test", "error"), ("train", "loss"), ("test", "loss")]:
        series = mine[(mine["split"] == split) & (mine["metric"] == metric)]
        assert list(series["step"]) == [m["step"] for m in metrics]
        assert list(series["value"]) == [m[f"{split}_{metric}"] for m in metrics]
    assert list(mine.loc[mine["metric"] == "lr", "value"]) == [m["lr"] for m in metrics]


def test_a_single_run_and_runs_read_alike(logged_sweep):
    one = resexp.load_runs(logged_sweep / "sweep" / "0_plain8")
    every = resexp.load_runs(logged_sweep)  # runs/ as well: the sweep lies beside the MLflow store
    assert list(one["run"]) == ["0_plain8"] and len(every) == 4
    pd.testing.assert_series_equal(one["final_test_error"].reset_index(drop=True),
                                   every.loc[every["run"] == "sweep/0_plain8", "final_test_error"].reset_index(drop=True))
