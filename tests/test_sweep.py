"""Sweeps that explain themselves: every job checked first, failed jobs listed, runs named by what
differs, one summary table that fits 80 columns, the gradient profile as one picture."""
import ast
import json
from pathlib import Path

import pytest
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2, metadata as cs_metadata

from resexp import names
from resexp.cli import main
from resexp.errors import UserError
from resexp.report.runs import load_runs
from resexp.report.tables import rich_table
from tests.conftest import TINY
from tests.fakes import fake_cifar


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def test_every_job_is_checked_before_any_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", *TINY, "depth=20,21"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 of 2 jobs of the sweep are invalid")
    assert "  depth=21: depth=21 is not of the form 6n+2" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_every_invalid_combination_is_in_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", *TINY, "depth=8,21", "model.activation=relu,swish", "dataset.noise=0.1,-1"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error: 7 of 8 jobs of the sweep are invalid; nothing was run:"
    assert len(lines) == 4  # one line per distinct problem, with the values its jobs share
    assert lines[1] == ("  depth=8 model.activation=relu dataset.noise=-1: dataset.noise=-1 is invalid; "
                        "it must be a number >= 0 (job 1)")
    assert lines[2].startswith("  model.activation=swish: model.activation='swish' is invalid; choose one of: relu")
    assert lines[2].endswith("(jobs 2, 3, 6, 7)")
    assert lines[3].startswith("  depth=21 model.activation=relu: depth=21 is not of the form 6n+2")
    assert not (tmp_path / "runs").exists()


def test_a_preset_sweep_is_checked_too(tmp_path, monkeypatch, capsys):
    """The preset's own sweep (hydra.sweeper.params) joins the command line's, as Hydra runs it."""
    monkeypatch.chdir(tmp_path)
    fake_cifar(tmp_path / "data", per_batch=8, test=8)
    assert main(["train", "-m", "+experiment=cifar10_shortcuts", "depth=33"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 3 of 3 jobs") and "depth=33 is not of the form 6n+2" in err


@pytest.fixture(scope="module")
def activation_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("act")
    sweep = root / "sweep"
    code = main(["train", "-m", *TINY, "trainer.profile_every=2", "model.activation=relu,gelu,tanh",
                 f"hydra.sweep.dir={sweep}"])
    return code, sweep


def test_swept_keys_name_the_runs(activation_sweep):
    code, sweep = activation_sweep
    assert code == 0
    runs = sorted(p.name for p in sweep.iterdir() if (p / "status.json").exists())
    assert runs == ["0_resnet8-A_act=relu", "1_resnet8-A_act=gelu", "2_resnet8-A_act=tanh"]


def test_summary_at_80_columns_keeps_run_key_and_error_columns_whole(activation_sweep):
    _, sweep = activation_sweep
    console = Console(width=80, record=True, color_system=None)
    console.print(rich_table(load_runs([sweep]), f"sweep {sweep}", console))
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80
    header = next(line for line in text.splitlines() if "status" in line)
    assert [h.strip() for h in header.split("┃")][:7] == ["run", "family", "depth", "act", "status", "test %",
                                                          "train %"]
    for run in sweep.glob("*_resnet8-A_*"):
        status = _status(run)
        (row,) = [line for line in text.splitlines() if run.name in line]  # the whole name, on one line
        assert f"{status['final_test_error']:.2f}" in row and f"{status['final_train_error']:.2f}" in row
        assert run.name.split("=")[1] in row  # the activation column


def test_profile_image_and_stage_charts_are_in_the_event_file(activation_sweep):
    _, sweep = activation_sweep
    run = sweep / "0_resnet8-A_act=relu"
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0}).Reload()
    images = events.Images("weight_grad/profile")
    assert [i.step for i in images] == [2, 4]  # trainer.profile_every=2, 4 steps
    assert images[0].encoded_image_string.startswith(b"\x89PNG") and (images[0].width, images[0].height) == (480, 240)
    assert len([t for t in events.Tags()["scalars"] if t.startswith("weight_grad_norm/")]) == 8  # the scalars stay
    (config,) = events.Tensors(cs_metadata.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert list(charts)[-5:] == ["conv1", "stage1", "stage2", "stage3", "fc"]
    assert charts["stage2"] == [r"^weight_grad_norm/\d+_stage2(\.|$)"]
    assert charts["train and test error (Fig. 6)"] == [r"^(train|test)/error$"]  # the curves, in every run
    assert not list(sweep.glob("events.out.tfevents.*"))  # the sweep directory is no run of its own


def test_a_job_failing_mid_sweep_is_listed_and_the_sweep_fails(tmp_path, monkeypatch, capsys):
    """Job 1's data file is damaged (the pre-check sees only that it exists): it fails while loading."""
    monkeypatch.chdir(tmp_path)
    fake_cifar(tmp_path / "good", per_batch=8, test=8)
    fake_cifar(tmp_path / "bad", per_batch=8, test=8)
    broken = tmp_path / "bad/cifar-10-batches-py/data_batch_3"
    broken.write_bytes(broken.read_bytes()[:100])
    code = main(["train", "-m", "dataset=cifar10", "dataset.root=good,bad", "trainer.steps=2", "trainer.batch_size=8",
                 "model.width=2", "depth=8", "device=cpu", "hydra.sweep.dir=sweep"])
    assert code == 1
    ok, bad = tmp_path / "sweep/0_resnet8-A_root=good", tmp_path / "sweep/1_resnet8-A_root=bad"
    assert _status(ok)["status"] == "finished"
    assert _status(bad)["status"] == "failed" and "data_batch_3" in _status(bad)["error"]
    out = capsys.readouterr().out
    assert "1_resnet8-A_root=bad: failed" in out and "data_batch_3" in out


def test_a_job_whose_own_validation_fails_is_recorded(tmp_path, monkeypatch, capsys):
    """Something the pre-check passed fails inside the job: the job is not lost."""
    import resexp.train.job as job

    def validate(cfg):
        if cfg.depth == 14:
            raise UserError("depth=14: the data vanished")
    monkeypatch.setattr(job, "validate", validate)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", *TINY, "depth=8,14", "hydra.sweep.dir=sweep"]) == 1
    failed = tmp_path / "sweep/1_resnet14-A"
    assert _status(failed) == {"status": "failed", "error": "depth=14: the data vanished"}
    assert (failed / "config.yaml").exists()  # so the report knows its family and depth
    out = capsys.readouterr().out
    assert "1_resnet14-A: failed (depth=14: the data vanished)" in out
    assert main(["report", "sweep"]) == 0
    assert "1_resnet14-A: failed" in capsys.readouterr().out


def test_run_names_are_short_and_filesystem_safe():
    resnet = {"name": "resnet", "shortcut": "A"}
    assert names.run_name(resnet, 20, ["model.activation=gelu", "depth=20"]) == "resnet20-A_act=gelu"
    assert names.run_name({"name": "plain"}, 56, ["optimizer.lr=0.05", "dataset.seed=3", "seed=1"]) == \
        "plain56_lr=0.05_dataset.seed=3_seed=1"  # two keys shortening alike keep their full names
    assert names.run_name({**resnet, "shortcut": "B"}, 8, ["dataset.root=/data/x y", "model.shortcut=B",
                                                           "schedule.milestones=[0.5,0.75]"],
                          exclude=["dataset.root"]) == "resnet8-B_milestones=-0.5-0.75"
    wide = {"name": "wide_resnet", "widen": 4}  # what the label shows is not repeated after it
    assert names.run_name(wide, 16, ["model.widen=4", "model.dropout=0.3"]) == "wide_resnet16-4_dropout=0.3"
    long = names.name_suffix([f"model.k{i}=" + "v" * 20 for i in range(10)])
    assert len(long) == names.MAX_SUFFIX and long != names.name_suffix([f"model.k{i}=" + "v" * 20 for i in range(11)])


def _imports(path: Path, module: str) -> set[str]:
    """The resexp modules a module imports, at its top or inside functions."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("resexp")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            if base.startswith("resexp"):
                found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return found


def _import_graph() -> dict:
    """{module: the resexp modules it imports}, for every module of the package."""
    root = Path(__file__).resolve().parents[1] / "resexp"
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {m: {i for i in _imports(p, m) if i in modules and i != m} for m, p in modules.items()}


# The lower layers and what they must not import: the nets, the data and the trackers know nothing of
# training, reports, explanations, sweeps or the command line.
HIGHER = ("resexp.train", "resexp.report", "resexp.explain", "resexp.sweep", "resexp.cli", "resexp.bench",
          "resexp.doctor")  # resexp.train covers resexp.train_command too


def test_no_module_imports_from_a_higher_layer():
    graph = _import_graph()
    wrong = [(m, i) for m, deps in graph.items() if m.startswith(("resexp.models", "resexp.data", "resexp.track"))
             for i in deps if i.startswith(HIGHER)]
    assert not wrong, f"imports from a higher layer: {wrong}"


def test_training_prints_no_report_and_the_sweep_library_no_command():
    """train/ trains and records; the run's table is printed by the train command, which alone runs Hydra."""
    graph = _import_graph()
    wrong = [(m, i) for m, deps in graph.items() for i in deps
             if m.startswith("resexp.train.") and i.startswith("resexp.report")
             or m == "resexp.sweep" and i.startswith(("resexp.train_command", "resexp.train.", "resexp.report"))]
    assert not wrong, wrong


def test_resexp_has_no_import_cycle():
    graph = _import_graph()
    # A package's __init__ importing its own modules, which import names from it, is the usual layout.
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for i in sorted(graph[m]):
            assert state.get(i) != "open", "import cycle: " + " -> ".join([*path, m, i])
            if i not in state:
                visit(i, [*path, m])
        state[m] = "done"
    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert "resexp.report.runs" in graph["resexp.report.summary"]  # the summary uses the report's table


def test_paper_column_only_beside_runs_on_the_references_dataset():
    from resexp.report.tables import display_rows

    def run(name, dataset, **status):
        return {"run": name, "status": "finished", "dir": Path(name), "family": "resnet-A", "depth": 20,
                "config": {"dataset.name": dataset, "model.name": "resnet", "depth": 20},
                "final_test_error": 9.0, "final_train_error": 1.0, **status}
    cifar = run("0_resnet20-A", "cifar10", paper_test_error=8.75, paper_dataset="cifar10")
    other = run("1_resnet20-A", "fashion_mnist", paper_test_error=8.75, paper_dataset="cifar10")
    headers, rows = display_rows([other])
    assert "paper %" not in headers
    headers, rows = display_rows([cifar, {**other, "depth": 32, "config": {**other["config"], "depth": 32}}])
    paper = headers.index("paper %")
    assert [r[paper] for r in rows] == ["8.75", "-"]


@pytest.mark.parametrize("args,says", [
    (["hydra/launcher=rq"], "hydra/launcher=rq needs the package hydra-rq-launcher"),
    (["hydra/sweeper=optuna"], "hydra/sweeper=optuna needs the package hydra-optuna-sweeper"),
    (["hydra/launcher=jblib"], "did you mean hydra/launcher=joblib?"),
    (["hydra/launcher=slurm"], "hydra/launcher=slurm submits each job to SLURM, whose commands (srun) this machine"),
])
def test_a_launcher_or_sweeper_that_cannot_run_says_what_to_install_or_do(tmp_path, monkeypatch, capsys, args, says):
    import shutil
    from tests.conftest import TINY, refused
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)  # not on a SLURM cluster
    assert says in refused(capsys, "train", "-m", *TINY, "depth=8,14", *args)
    assert not (tmp_path / "runs").exists()


def test_an_install_without_resexps_launcher_plugin_says_to_install_again(tmp_path, monkeypatch, capsys):
    """An editable install made before hydra_plugins/resexp_launcher existed cannot import it."""
    import sys
    from tests.conftest import TINY, refused
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "hydra_plugins.resexp_launcher.parallel", None)  # import raises ImportError
    assert "hydra/launcher=parallel is a plugin of resexp that this install lacks; install resexp again" in refused(
        capsys, "train", "-m", *TINY, "depth=8,14", "hydra/launcher=parallel")
    assert not (tmp_path / "runs").exists()


def test_bench_names_an_unknown_model_with_the_known_ones(capsys):
    from tests.conftest import refused
    assert "--models=plian is not a known model; did you mean plain?" in refused(capsys, "bench", "--models",
                                                                                 "plian,resnet")
