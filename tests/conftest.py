"""Shared fixtures: the real composed config, shrunk for the CPU."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

# A run that finishes in a second or two on a CPU: tiny images, few of them, one epoch; in fp32, so that
# numbers compare alike on CPUs with and without bf16 units (where precision=auto would differ).
TINY = ["dataset.train_size=256", "dataset.test_size=128", "dataset.image_size=8",
        "trainer.epochs=1", "trainer.batch_size=64", "trainer.log_every=2", "depth=8", "device=cpu",
        "trainer.precision=fp32"]

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")

# Overrides that put a test on each device: the CPU always, eagerly and as an emulated CUDA graph; a CUDA
# GPU where there is one, with deterministic=true, without which GPU runs are not bit-reproducible
# (cudnn's algorithm choice).
DEVICES = [pytest.param(["device=cpu"], id="cpu"),
           pytest.param(["device=cpu", "trainer.cuda_graph=emulate"], id="cpu-graph"),
           pytest.param(["device=cuda", "deterministic=true"], id="cuda", marks=needs_cuda)]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path_factory):
    """Toy nets train fastest on one thread, and far faster than on two when the machine is busy;
    OMP_NUM_THREADS carries this into the `resexp` subprocesses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))  # a timed precision's memory
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compose_cfg():
    def _compose(*overrides, tiny=True):
        with initialize_config_module("resexp.conf", version_base="1.3"):
            return compose("train", overrides=(TINY if tiny else []) + list(overrides))
    return _compose


@pytest.fixture
def resexp_cli(tmp_path):
    """Run the installed `resexp` console script in tmp_path; returns the CompletedProcess."""
    def _run(*args, timeout=300):
        env = {**os.environ, "COLUMNS": "200"}
        env.pop("RESEXP_DEBUG", None)
        exe = os.path.join(os.path.dirname(sys.executable), "resexp")
        return subprocess.run([exe, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=env)
    return _run


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """A tiny trained resnet-8 and plain-8 (4 steps each): RUNS/resnet and RUNS/plain, for the
    commands that read trained runs (lesion, landscape, paths)."""
    from resexp.cli import main
    root = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one_thread does for each test: far faster on a busy machine
    for model in ("resnet", "plain"):
        assert main(["train", *TINY, f"model={model}", f"hydra.run.dir={root / model}"]) == 0
    torch.set_num_threads(threads)
    return root


ROOT = Path(__file__).resolve().parent.parent


def copy_repository(tmp_path) -> Path:
    """A copy of the repository (package, configs, tests, docs) to add a contributor's module to; a process
    started in it with PYTHONPATH=<copy> imports the copy's resexp."""
    copy = tmp_path / "repo"
    for part in ("resexp", "tests", "docs", "conf"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
    shutil.copytree(ROOT / "conf", copy / "resexp" / "conf")  # where the wheel puts it (pyproject.toml)
    shutil.copy(ROOT / "pyproject.toml", copy)
    return copy


def register(registry: Path, table: str, name: str, declaration: str) -> None:
    """What a contributor writes into a registry module: the import of `declaration` from the module `name`
    and its line `"name": DECLARATION,` in the dict `table`."""
    lines = registry.read_text().splitlines(keepends=True)
    last_import = max(i for i, line in enumerate(lines) if line.startswith("from ."))
    lines.insert(last_import + 1, f"from .{name} import {declaration}\n")
    end = lines.index("}\n", next(i for i, line in enumerate(lines) if line.startswith(table)))
    lines.insert(end, f'    "{name}": {declaration},\n')
    registry.write_text("".join(lines))


def small_net(model_option: str) -> list[str]:
    """Overrides for a small, quick net of a `model` option (a family or a preset), derived from its
    family's declaration alone: `model=X`, its smallest depth and every integer option of its record that
    defaults above 2 (growth, cardinality, widen, ...) at 2; width stays for the caller to set."""
    from hydra import compose, initialize_config_module
    from resexp.models import FAMILIES
    from resexp.models.options import option_fields
    with initialize_config_module("resexp.conf", version_base="1.3"):
        model = dict(compose("train", overrides=[f"model={model_option}"]).model)
    family = FAMILIES[model.pop("name")]
    small = {name: 2 for name, f in option_fields(family.options).items()
             if name != "width" and type(f.default) is int and f.default > 2 and f.metadata["test"](2)}
    depth = family.smallest_depth(**{**model, **small})
    return [f"model={model_option}", f"depth={depth}", *(f"model.{k}={v}" for k, v in small.items())]


def refused(capsys, *args) -> str:
    """`resexp ARGS` exits 2 with one line on stderr, `error: ...`; returns that line."""
    from resexp.cli import main
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def refusal_dirs(tmp_path, run, taken_file: str) -> None:
    """In tmp_path: `empty`, a run directory with RUN's config and no checkpoint, and `taken`, an --out
    directory that already holds `taken_file`."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/config.yaml").write_text((run / "config.yaml").read_text())
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / taken_file).write_text("")


@pytest.fixture(scope="session")
def logged_sweep(tmp_path_factory):
    """ROOT/sweep: four tiny jobs (plain and resnet, depth 8 and 14) logged with +logger=mlflow into the
    default store under ROOT (runs/mlflow/, relative to the directory the sweep ran in). Returns ROOT."""
    from resexp.cli import main
    root = tmp_path_factory.mktemp("logged")
    cwd, threads = os.getcwd(), torch.get_num_threads()
    torch.set_num_threads(1)
    os.chdir(root)
    try:
        assert main(["train", "-m", *TINY, "+logger=mlflow", "model=plain,resnet", "depth=8,14",
                     "hydra.sweep.dir=sweep"]) == 0
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return root
