"""`resexp report` and `resexp compare` on a real tiny sweep plus a failed run; TensorBoard extras."""
import csv
import json
import re
import shutil

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2, metadata as cs_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from resexp.cli import main
from resexp.report.runs import load_runs
from resexp.track.logger import identifying
from tests.conftest import TINY

FIGURES = {"degradation.png": (1800, 675), "depth.png": (1800, 675), "grad_norms.png": (1800, 675),
           "responses.png": (1800, 675)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Four tiny finished jobs (plain and resnet, depth 8 and 14) and one failed run beside them."""
    sweep = tmp_path_factory.mktemp("report") / "sweep"
    assert main(["train", "-m", *TINY, "model=plain,resnet", "depth=8,14", f"hydra.sweep.dir={sweep}"]) == 0
    failed = sweep / "9_failed"
    failed.mkdir()
    shutil.copy(sweep / "0_plain8" / "config.yaml", failed / "config.yaml")
    config = (failed / "config.yaml").read_text()
    (failed / "config.yaml").write_text(config.replace("\nseed: 0\n", "\nseed: 1\n"))  # another seed, same config
    (failed / "status.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: out of memory"}))
    return sweep


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_report_writes_tables_and_figures(sweep, capsys):
    assert main(["report", str(sweep)]) == 0
    out = capsys.readouterr().out
    report = sweep / "report"
    for name, size in FIGURES.items():
        with Image.open(report / name) as image:
            assert image.size == size, name
    runs = {r["run"]: r for r in _csv(report / "runs.csv")}
    assert set(runs) == {"0_plain8", "1_resnet8-A", "2_plain14", "3_resnet14-A", "9_failed"}
    for name, row in runs.items():
        status = json.loads((sweep / name / "status.json").read_text())
        assert row["status"] == status["status"]
        if status["status"] == "finished":
            assert float(row["final_test_error"]) == status["final_test_error"]
            assert float(row["final_train_error"]) == status["final_train_error"]
            assert int(row["parameters"]) == status["parameters"]
    assert runs["9_failed"]["error"] == "RuntimeError: out of memory"

    summary = {(r["family"], r["depth"]): r for r in _csv(report / "summary.csv")}
    assert set(summary) == {("plain", "8"), ("plain", "14"), ("resnet-A", "8"), ("resnet-A", "14")}
    resnet14 = json.loads((sweep / "3_resnet14-A" / "status.json").read_text())
    assert float(summary["resnet-A", "14"]["test_error_mean"]) == resnet14["final_test_error"]
    assert float(summary["resnet-A", "14"]["best_test_error"]) == resnet14["best_test_error"]
    # The failed seed joins its configuration: counted, shown, left out of the mean.
    plain8 = summary["plain", "8"]
    assert plain8["status"] == "1 finished, 1 failed" and plain8["runs"] == "2" and plain8["finished"] == "1"
    status8 = json.loads((sweep / "0_plain8" / "status.json").read_text())
    assert float(plain8["test_error_mean"]) == status8["final_test_error"]

    md = (report / "summary.md").read_text()
    assert "| run | family | depth | status |" in md and "9_failed: failed (RuntimeError: out of memory)" in md
    assert "1 failed" in out and "9_failed: failed" in out
    # One finished seed each: differences without intervals, and the report says why.
    flat = " ".join(out.split())
    assert "one seed per configuration: no interval can be given" in flat
    plain = {r: json.loads((sweep / r / "status.json").read_text())["final_train_error"] for r in ("0_plain8", "2_plain14")}
    assert (f"plain14 - plain8 train error: {plain['2_plain14'] - plain['0_plain8']:+.2f} points (1 seed each: no interval"
            " can be given)") in flat
    differences = {(r["change"], r["baseline"], r["error"]): r for r in _csv(report / "differences.csv")}
    assert set(differences) == {(c, b, e) for c, b in (("plain14", "plain8"), ("resnet14-A", "resnet8-A"),
                                                      ("resnet8-A", "plain8"), ("resnet14-A", "plain14"))
                                for e in ("test", "train")}
    assert all(r["ci_low"] == "" and r["p"] == "" for r in differences.values())


def test_finished_run_has_hparams_in_its_own_event_file(sweep):
    run = sweep / "3_resnet14-A"
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["checkpoints"]  # no stray hparams run
    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    # what identifies the run, typed, then the swept keys; not the whole config
    assert hparams["model.name"].string_value == "resnet" and hparams["depth"].number_value == 14
    assert "dataset.augment.crop_padding" not in hparams and "trainer.eval_batch_size" not in hparams
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    columns = [h.name for h in experiment.hparam_infos]  # HPARAMS' columns, in this order
    assert columns[:3] == ["model.name", "depth", "model.shortcut"] and "trainer.epochs" in columns
    assert columns[:len(identifying())] == list(identifying())  # and the other families' label options
    assert [m.name.tag for m in experiment.metric_infos] == ["test/error", "train/error"]  # the curves' own tags
    status = json.loads((run / "status.json").read_text())
    assert events.Scalars("test/error")[-1].value == pytest.approx(status["final_test_error"])
    assert not [t for t in events.Tags()["scalars"] if t.startswith("final/")]  # no single-point charts


def test_sweep_dir_is_no_tensorboard_run(sweep):
    assert not list(sweep.glob("events.out.tfevents.*"))


def test_compare_prints_hand_picked_runs(sweep, capsys):
    assert main(["compare", str(sweep / "0_plain8"), str(sweep / "1_resnet8-A")]) == 0
    out = capsys.readouterr().out
    assert "plain" in out and "resnet-A" in out and "resnet-A  │    14" not in out


@pytest.mark.parametrize("command", ["report", "compare"])
def test_missing_path_is_one_line_and_exit_2(tmp_path, capsys, command):
    assert main([command, str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nowhere" in err


def test_report_of_one_run_and_compare_out(sweep, tmp_path, capsys):
    run = sweep / "2_plain14"
    assert main(["report", str(run)]) == 0
    (row,) = _csv(run / "report" / "summary.csv")
    assert row["family"] == "plain" and row["depth"] == "14" and row["status"] == "finished"
    assert main(["compare", str(sweep / "0_plain8"), str(run), "--out", str(tmp_path / "cmp")]) == 0
    assert [r["depth"] for r in _csv(tmp_path / "cmp" / "summary.csv")] == ["8", "14"]
    assert (tmp_path / "cmp" / "runs.csv").exists() and not list((tmp_path / "cmp").glob("*.png"))


def test_each_finished_run_logs_its_layer_responses(sweep):
    """Fig. 7 data: one std per 3x3 layer's norm output (stem + 2 per block), shortcuts excluded."""
    for name, blocks in (("1_resnet8-A", 3), ("3_resnet14-A", 6), ("2_plain14", 6)):
        responses = json.loads((sweep / name / "responses.json").read_text())
        assert responses["layers"][0] == "bn1" and responses["layers"][-1].startswith("stage3.")
        assert len(responses["layers"]) == len(responses["std"]) == 1 + 2 * blocks
        assert all(0 < std < 100 for std in responses["std"])


def test_keys_swept_within_a_family_and_depth_split_rows_and_panels(sweep, tmp_path):
    """A second plain-8 trained with tanh is its own row and panel; a key that only names family and
    depth (like the Fig. 6 preset's `net`) is no column."""
    root = tmp_path / "sweep"
    shutil.copytree(sweep, root, ignore=shutil.ignore_patterns("report"))
    tanh = root / "8_plain8-tanh"
    shutil.copytree(root / "0_plain8", tanh)
    (tanh / "config.yaml").write_text((tanh / "config.yaml").read_text().replace("activation: relu", "activation: tanh"))
    status = json.loads((tanh / "status.json").read_text())
    (tanh / "status.json").write_text(json.dumps({**status, "final_test_error": 50.0}))
    for run, net in (("0_plain8", "plain8"), ("8_plain8-tanh", "plain8"), ("9_failed", "plain8"),
                     ("1_resnet8-A", "resnet8"), ("2_plain14", "plain14"), ("3_resnet14-A", "resnet14")):
        cfg = (root / run / "config.yaml").read_text()
        (root / run / "config.yaml").write_text(f"net: {net}\n" + cfg)

    assert main(["report", str(root)]) == 0
    rows = _csv(root / "report" / "summary.csv")
    assert "net" not in rows[0] and "model.activation" in rows[0]
    plain8 = {r["model.activation"]: r for r in rows if (r["family"], r["depth"]) == ("plain", "8")}
    assert float(plain8["tanh"]["test_error_mean"]) == 50.0 and plain8["tanh"]["status"] == "finished"
    assert float(plain8["relu"]["test_error_mean"]) == json.loads((root / "0_plain8" / "status.json").read_text())[
        "final_test_error"]
    assert {r["series"] for r in load_runs([root])} == {"plain", "plain act=tanh", "resnet-A"}  # relu: most runs
    with Image.open(root / "report" / "degradation.png") as image:
        assert image.size == FIGURES["degradation.png"]  # three panels, one row


@pytest.mark.filterwarnings("error")  # no matplotlib warning leaks out of a report
def test_many_mixed_runs_stay_readable_at_80_columns(sweep, tmp_path):
    """Sixteen kinds of runs with long names, one of them twice with only housekeeping changed: the
    80-column table keeps status and errors whole, housekeeping never makes a row, and the figure of
    curves splits into files of at most nine panels."""
    from rich.console import Console
    from resexp.report import figures
    from resexp.report.tables import rich_table
    root = tmp_path / "runs"
    kinds = [f"activation: {a}" for a in ("tanh", "gelu", "elu", "silu", "sigmoid", "prelu", "leaky_relu")]
    kinds += [f"init: {i}" for i in ("xavier", "orthogonal", "kaiming_uniform")]
    for i, kind in enumerate(kinds):
        for base in ("0_plain8", "1_resnet8-A"):
            run = root / f"{i}_{base}_a_very_long_run_name_that_says_what_was_overridden_{kind.split()[1]}"
            shutil.copytree(sweep / base, run, ignore=shutil.ignore_patterns("report"))
            config = (run / "config.yaml").read_text()
            (run / "config.yaml").write_text(config.replace("activation: relu", kind) if "activation" in kind
                                             else config.replace("init: kaiming_normal", kind))
    twin = root / "99_plain8_log_every=5"
    shutil.copytree(sweep / "0_plain8", twin, ignore=shutil.ignore_patterns("report"))
    (twin / "config.yaml").write_text((twin / "config.yaml").read_text().replace("log_every: 2", "log_every: 5"))
    runs = load_runs([root, sweep / "0_plain8"])
    console = Console(width=80, record=True)
    console.print(rich_table(runs, "report", console))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    head = next(line for line in text.splitlines() if "┃" in line)
    assert head.split()[0] == "run" and head.rstrip().endswith("train %")  # the run column stays, train % whole
    rows = [line.split("│") for line in text.splitlines() if "│" in line]
    assert all(re.fullmatch(r"\d+\.\d\d( ± \d+\.\d\d)?", row[-1].strip()) for row in rows), text  # whole
    assert all(row[0].strip() for row in rows)
    assert text.count("2 finished") == 1  # the housekeeping twin shares the plain-8 row
    status = json.loads((sweep / "1_resnet8-A" / "status.json").read_text())
    assert f"{status['final_test_error']:.2f}" in text and "finished" in text
    assert "log_every" not in text
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 0  # no matplotlib warning either
    pages = figures.degradation(runs, tmp_path / "degradation.png")
    assert [p.name for p in pages] == ["degradation.png", "degradation_2.png", "degradation_3.png"]  # 21 series
    for page in pages:
        with Image.open(page) as image:
            assert image.size[0] == 1800 and image.size[1] <= 2250


def test_a_panel_whose_runs_logged_no_finite_error_says_why(sweep, tmp_path, monkeypatch):
    """A net that diverged at its first step has no curve: its panel names the run and the step instead of
    standing empty beside the others."""
    import matplotlib.pyplot as plt
    from resexp.report import figures
    from resexp.report.runs import load_runs
    diverged = tmp_path / "9_resnet8-A_norm=none"
    shutil.copytree(sweep / "1_resnet8-A", diverged, ignore=shutil.ignore_patterns("report"))
    (diverged / "metrics.jsonl").write_text("")
    (diverged / "status.json").write_text(json.dumps({"status": "diverged", "step": 1}))
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: (drawn.append(fig), plt.close(fig)))
    figures.degradation(load_runs([sweep / "0_plain8", diverged]), tmp_path / "degradation.png")
    texts = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in drawn[0].axes if ax.get_visible()}
    assert texts["plain"] == []
    assert [" ".join(t.split()) for t in texts["resnet-A"]] == [
        "9_resnet8-A_norm=none: diverged at step 1; no finite error logged"]


def _hparams(run):
    content = EventAccumulator(str(run)).Reload().PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return [h.name for h in experiment.hparam_infos], set(session.session_start_info.hparams)


def test_every_run_declares_every_runs_hparams_columns(tmp_path):
    """HPARAMS shows the columns one run declares, whichever it reads first: each run under a --logdir
    declares the same ones, and they hold every key by which any of those runs is identified."""
    runs = {"0_plain8": ["model=plain"], "1_plain14": ["model=plain", "depth=14", "optimizer.lr=0.05"],
            "3_resnet8-A": ["+experiment=degradation_quick", "model=resnet", "depth=8", *TINY]}
    for name, overrides in runs.items():
        assert main(["train", *TINY, *overrides, f"hydra.run.dir={tmp_path / name}"]) == 0
    declared = {name: _hparams(tmp_path / name) for name in runs}
    columns = declared["0_plain8"][0]
    assert all(c == columns for c, _ in declared.values())  # the same for every run: stable between loads
    assert columns[:3] == ["model.name", "depth", "model.shortcut"]
    assert columns[:len(identifying())] == list(identifying())
    assert set().union(*(keys for _, keys in declared.values())) <= set(columns)  # every run's keys
    assert {"optimizer.lr", "experiment", "model.shortcut"} <= set(columns)


def test_hparams_opens_with_the_columns_that_tell_a_sweeps_runs_apart(tmp_path):
    """TensorBoard sorts HPARAMS' columns (those declared `differs` first, then by name) and ticks the first
    five: for degradation_quick's jobs those are what the sweep varies, whichever job it reads first."""
    import yaml
    from tensorboard.plugins.hparams.backend_context import _sort_and_reduce_to_hparams_limit
    from resexp.config import hparam_columns
    from resexp.sweep import compose_job, hydra_initialized
    from resexp.track.logger import RunLogger
    for name, model in (("0_plain8", "model=plain"), ("3_resnet8-A", "model=resnet")):
        overrides = ["+experiment=degradation_quick", model, "depth=8"]  # what the sweep gives each job
        (tmp_path / name).mkdir()
        (tmp_path / name / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        with hydra_initialized():
            cfg = compose_job(overrides)
        with RunLogger(tmp_path / name) as logger:
            logger.hparams(cfg, hparam_columns())
        content = EventAccumulator(str(tmp_path / name)).Reload().PluginTagToContent("hparams")
        experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        _sort_and_reduce_to_hparams_limit(experiment)  # as TensorBoard's backend hands them to the page
        ticked = [h.name for h in experiment.hparam_infos][:5]
        assert {"model.name", "depth", "experiment"} <= set(ticked), ticked
        assert not any(c.startswith("dataset.augment") for c in ticked)


def test_status_at_80_columns_keeps_every_run_name_on_one_line(sweep, tmp_path, monkeypatch):
    from io import StringIO
    from rich.console import Console
    from resexp.report import overview
    root = tmp_path / "runs"
    for day in ("2026-12-04", "multirun/2026-12-04_14-53-15"):
        for base in ("0_plain8", "3_resnet14-A"):
            shutil.copytree(sweep / base, root / day / f"{base}_act=leaky_relu_lr=0.05")
    screen = Console(file=StringIO(), width=80, color_system=None)
    monkeypatch.setattr(overview, "console", screen)
    assert main(["status", str(root)]) == 0
    text = screen.file.getvalue()
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    assert sum("0_plain8_act=leaky_relu_lr=0.05 " in line for line in lines) == 2  # whole
    assert "error" not in lines[1]  # no empty column of errors
    failed = root / "2026-12-04" / "3_resnet14-A_act=leaky_relu_lr=0.05"
    (failed / "status.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: out of memory"}))
    screen.file.truncate(0)
    assert main(["status", str(root)]) == 0
    assert f"{failed}: RuntimeError: out of memory" in screen.file.getvalue()  # under the table, whole


def test_a_series_names_a_family_option_only_away_from_the_familys_default(tmp_path, monkeypatch):
    """A widen and dropout sweep of WRNs: the width is in the label (wide_resnet-2), and a series names
    `dropout` only where it is not the family's default 0, even when half the runs use 0.3."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", *TINY, "model=wide_resnet", "depth=10", "model.widen=1,2", "model.dropout=0.3,0.0",
                 "model.width=4", "trainer.steps=2", "hydra.sweep.dir=sweep"]) == 0
    series = sorted({r["series"] for r in load_runs([tmp_path / "sweep"])})
    assert series == ["wide_resnet-1", "wide_resnet-1 dropout=0.3", "wide_resnet-2", "wide_resnet-2 dropout=0.3"]


def test_a_series_leaves_out_a_model_option_its_family_does_not_take(tmp_path, monkeypatch):
    """A plain net beside ResNets swept over model.branch_scaling is the series `plain`, not
    `plain branch_scaling=None`."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", *TINY, "model=resnet", "model.branch_scaling=none,rezero", "trainer.steps=2",
                 "hydra.sweep.dir=sweep/a_resnet"]) == 0
    assert main(["train", *TINY, "model=plain", "trainer.steps=2", "hydra.run.dir=sweep/b_plain"]) == 0
    runs = load_runs([tmp_path / "sweep"])
    assert sorted({r["series"] for r in runs}) == ["plain", "resnet-A", "resnet-A branch_scaling=rezero"]
    from resexp.report.tables import display_rows
    headers, rows = display_rows(runs)  # and the table's cell for a key the family has not: "-"
    cells = sorted((row[1], row[headers.index("branch_scaling")]) for row in rows)
    assert cells == [("plain", "-"), ("resnet-A", "none"), ("resnet-A", "rezero")], cells


def test_compare_over_seeds_prints_intervals_and_verdicts(sweep, tmp_path, capsys):
    """The tiny sweep's plain nets copied as seeds 1 and 2 (train error 1 and 2 points higher each time):
    every difference is paired by seed, and `compare` prints the intervals and the verdict line that
    `report` does; --out adds differences.csv and refuses a folder holding one."""
    runs = []
    for name in ("0_plain8", "2_plain14"):
        for seed in (0, 1, 2):
            run = tmp_path / f"{name}_seed={seed}"
            shutil.copytree(sweep / name, run, ignore=shutil.ignore_patterns("report"))
            (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("\nseed: 0\n", f"\nseed: {seed}\n"))
            status = json.loads((run / "status.json").read_text())
            status["final_train_error"] += seed * (1 if name == "0_plain8" else 2)
            (run / "status.json").write_text(json.dumps(status))
            runs.append(run)
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "out")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    train = {name: json.loads((sweep / name / "status.json").read_text())["final_train_error"]
             for name in ("0_plain8", "2_plain14")}
    gap = train["2_plain14"] - train["0_plain8"]  # seed by seed: gap, gap + 1, gap + 2
    assert f"plain14 - plain8 train error: {gap + 1:+.2f} points [{gap:.2f}, {gap + 2:.2f}], p = " in out
    assert "(3 seeds each, paired)" in out and "Final error over seeds, %: mean [95% bootstrap interval]" in out
    assert f"│ {train['0_plain8'] + 1:.2f} [{train['0_plain8']:.2f}, {train['0_plain8'] + 2:.2f}]" in out  # plain8's row
    rows = _csv(tmp_path / "out" / "differences.csv")
    assert {(r["change"], r["baseline"], r["error"], r["test"]) for r in rows} == {
        ("plain14", "plain8", "test", ""), ("plain14", "plain8", "train", "paired")}
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "out")]) == 2
    assert "already holds summary.md, summary.csv, runs.csv, differences.csv" in capsys.readouterr().err
