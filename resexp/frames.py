"""Runs as pandas tables: `resexp.load_runs(PATH)` (one row per run) and `resexp.load_curves(PATH)` (the
metrics rows in long form), for notebooks and scripts.

Both read the run directories through the report's own reader (report/runs.load_runs), so a table made
here holds the same numbers as `resexp report PATH`: nothing is recomputed, every number comes from a
run's config.yaml, status.json and metrics.jsonl.
"""
from pathlib import Path

import pandas as pd

from .report.runs import load_runs as read_runs, other_swept_keys
from .report.tables import paper_error
from .track.logger import identifying
from .track.status import reached_step

# The metrics rows' curves, by the split they measure: `train_error` -> ("train", "error"). lr is the
# training lr at the evaluation.
SPLITS = ("train", "test", "val")
CURVES = ("error", "loss")
# Columns of whole numbers (a failed run has none, which would make pandas print 75290.0)
COUNTS = ("depth", "seed", "steps", "parameters")
# Numbers of a run beside its final errors: how long it ran, its size, the paper's number for its net.
RUN_NUMBERS = ("steps", "wall_time", "parameters", "paper_test_error", "paper_statistic", "paper_source")


def _identity(runs: list[dict]) -> list[str]:
    """The config keys that identify runs: identifying() (model, depth, the options labels show, dataset,
    seed) that any run has, then the keys the report shows as swept (differing between runs of one family
    and depth)."""
    return [*(k for k in identifying() if any(k in r["config"] for r in runs)), *other_swept_keys(runs)]


def _names(runs: list[dict], root: Path) -> list[str]:
    """Each run's name: its path under `root` (sweep job directories repeat across sweeps under runs/),
    or its directory name when `root` is the run itself."""
    names = []
    for r in runs:
        try:
            relative = Path(r["dir"]).resolve().relative_to(root.resolve())
        except ValueError:
            relative = Path(r["dir"])
        names.append(r["run"] if str(relative) == "." else str(relative))
    return names


def _best(metrics: list[dict], key: str):
    values = [row[key] for row in metrics if isinstance(row.get(key), (int, float))]
    return min(values) if values else None


def _row(run: dict, name: str, keys: list[str]) -> dict:
    """One run: identity, status, final and best errors (%) and losses, then RUN_NUMBERS. Final numbers come
    from status.json (what the report shows); a run without them (running, killed) reads its last metrics row."""
    last = run["metrics"][-1] if run["metrics"] else {}
    row = {"run": name, "family": run["family"], **{k: run["config"].get(k) for k in keys},
           "status": run["status"]}
    for split in SPLITS:
        if split == "val" and "val_error" not in last:
            continue
        for curve in CURVES:
            key = f"{split}_{curve}"
            final = run.get(f"final_{key}")
            row[f"final_{key}"] = final if final is not None else last.get(key)
            row[f"best_{key}"] = _best(run["metrics"], key)
    if run.get("best_test_error") is not None:  # the loop's own minimum over every evaluation it kept
        row["best_test_error"] = run["best_test_error"]
    row.update({k: run.get(k) for k in RUN_NUMBERS})
    row["paper_test_error"] = paper_error(run)  # only beside runs on the dataset the paper used
    row["steps"] = run.get("steps") if run["status"] == "finished" else reached_step(run, run["metrics"])
    row["error"] = run.get("error")
    row["path"] = str(run["dir"])
    return row


def load_runs(path) -> pd.DataFrame:
    """One row per run under `path` (a run directory, a sweep directory or runs/): `run` (its path under
    `path`), `family` (the report's label: plain, resnet-A), the identifying config keys flattened
    (`model.name`, `depth`, `model.shortcut`, `dataset.name`, `seed`, then every key that differs between the
    runs), `status`, `final_` and `best_` train and test `error` (%) and `loss`, `steps`, `wall_time` (s),
    `parameters`, `paper_test_error` (%; 'fail' where the paper says so), `paper_statistic`, `paper_source`,
    `error` (why a run did not finish) and `path`. Ordered as the report orders its rows.

    The degradation table: `load_runs(sweep).pivot_table(index="depth", columns="family",
    values="final_test_error")`."""
    return runs_table(read_runs([path]), Path(path))


def runs_table(runs: list[dict], root: Path) -> pd.DataFrame:
    """load_runs' table of runs already read (report/runs.load_runs), named by their paths under `root`:
    also the report's runs.csv."""
    keys = _identity(runs)
    table = pd.DataFrame([_row(r, name, keys) for r, name in zip(runs, _names(runs, root))])
    for column in COUNTS:  # whole numbers stay whole beside a run that has none (pandas' nullable Int64)
        if column in table and pd.api.types.is_numeric_dtype(table[column]) \
                and all(float(v).is_integer() for v in table[column].dropna()):
            table[column] = table[column].astype("Int64")
    return table


def load_curves(path) -> pd.DataFrame:
    """The metrics rows of every run under `path` in long form, one row per value: `run` (as load_runs
    names it), `family` and the identifying keys, `step`, `epoch`, `time` (s since the run started),
    `split` (train, test, val), `metric` (error in %, loss, lr) and `value`. The training numbers of a row
    are averages since the previous evaluation; TensorBoard holds the finer training curves."""
    runs = read_runs([path])
    keys = _identity(runs)
    rows = []
    for run, name in zip(runs, _names(runs, Path(path))):
        identity = {"run": name, "family": run["family"], **{k: run["config"].get(k) for k in keys}}
        for m in run["metrics"]:
            at = {**identity, "step": m["step"], "epoch": m.get("epoch"), "time": m.get("time")}
            values = [(split, curve, m.get(f"{split}_{curve}")) for split in SPLITS for curve in CURVES]
            for split, metric, value in [*values, ("train", "lr", m.get("lr"))]:
                if value is not None:
                    rows.append({**at, "split": split, "metric": metric, "value": value})
    columns = ["run", "family", *keys, "step", "epoch", "time", "split", "metric", "value"]
    return pd.DataFrame(rows, columns=columns)
