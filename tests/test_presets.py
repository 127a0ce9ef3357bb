"""Every experiment preset runs each of its sweep's jobs for a few iterations on fake CIFAR-10."""
import json

import pytest
from hydra import compose, initialize_config_module

from resexp.config import group_options, validate
from resexp.report.tables import mean_std
from resexp.train.loop import train
from tests.fakes import fake_cifar

# cifar10_table6 builds ResNet-1202 (12 s): `python -m pytest -m slow` runs it
PRESETS = [pytest.param(p, marks=pytest.mark.slow) if p == "cifar10_table6" else p
           for p in group_options("experiment") if p.startswith("cifar")]
# The recipe at toy scale: a few iterations, narrow nets, a small val split of the fake data.
SHRINK = ["trainer.steps=2", "trainer.batch_size=8", "trainer.eval_every=2", "trainer.log_every=1",
          "model.width=2", "dataset.val_size=16", "device=cpu"]


def compose_preset(preset, *overrides, hydra=False):
    with initialize_config_module("resexp.conf", version_base="1.3"):
        return compose("train", overrides=[f"+experiment={preset}", *overrides], return_hydra_config=hydra)


def sweep_jobs(preset) -> list[list[str]]:
    """The preset's own sweep, one override list per job (a cartesian product, as Hydra's sweeper)."""
    params = compose_preset(preset, "dataset.download=true", hydra=True).hydra.sweeper.params or {}
    jobs = [[]]
    for key, values in params.items():
        jobs = [job + [f"{key}={v}"] for job in jobs for v in str(values).split(",")]
    return jobs


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    fake_cifar(root, per_batch=8, test=8)
    return root


def test_recipe_is_the_papers(cifar_root):
    cfg = compose_preset("cifar10_recipe", f"dataset.root={cifar_root}")
    assert cfg.dataset.name == "cifar10" and cfg.dataset.val_size == 5000 and cfg.dataset.normalize == "per_pixel"
    assert cfg.dataset.augment.flip and cfg.dataset.augment.crop_padding == 4
    assert (cfg.trainer.batch_size, cfg.trainer.steps, cfg.optimizer.lr, cfg.optimizer.momentum,
            cfg.optimizer.weight_decay) == (128, 64000, 0.1, 0.9, 1e-4)
    assert list(cfg.schedule.milestones) == [32000, 48000] and cfg.schedule.unit == "step"
    assert (cfg.warmup.lr, cfg.warmup.until_error, cfg.warmup.min_depth) == (0.01, 80, 110)
    assert cfg.model.shortcut == "A"


def test_sweeps_list_the_papers_nets():
    assert [j[0] for j in sweep_jobs("cifar10_fig6")] == [
        f"net={n}" for n in "plain20 plain32 plain44 plain56 resnet20 resnet32 resnet44 resnet56 resnet110".split()]
    assert [j[0] for j in sweep_jobs("cifar10_table6")] == [f"depth={d}" for d in (20, 32, 44, 56, 110, 1202)]
    assert [j[0] for j in sweep_jobs("cifar10_shortcuts")] == ["model.shortcut=A", "model.shortcut=B", "model.shortcut=C"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_every_preset_runs(preset, cifar_root, tmp_path):
    for i, job in enumerate(sweep_jobs(preset)):
        cfg = compose_preset(preset, f"dataset.root={cifar_root}", *SHRINK, *job)
        validate(cfg)
        run_dir = tmp_path / str(i)
        run_dir.mkdir()
        result = train(cfg, run_dir)
        assert result["steps"] == 2 and "final_val_error" in result
        if (cfg.model.name, cfg.depth, cfg.model.get("shortcut")) == ("resnet", 110, "A"):
            assert result["paper_test_error"] == 6.43  # He et al. 2015, Table 6
        if cfg.model.name == "plain":  # the paper has only curves for plain nets on CIFAR
            assert "paper_test_error" not in result


@pytest.mark.slow  # ~6 s: the Fig. 6 preset over seeds
def test_fig6_is_one_command_with_seeds(cifar_root, tmp_path, resexp_cli):
    """The whole instruction, as README gives it, plus a seed sweep and the toy-scale shrink."""
    result = resexp_cli("train", "-m", "+experiment=cifar10_fig6", f"dataset.root={cifar_root}", *SHRINK,
                        "trainer.steps=1", "seed=1,2", "net=plain20,resnet110", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert runs == ["0_plain20_seed=1", "1_plain20_seed=2", "2_resnet110-A_seed=1", "3_resnet110-A_seed=2"]
    status = json.loads((tmp_path / "sweep/3_resnet110-A_seed=2/status.json").read_text())
    assert status["status"] == "finished" and status["paper_test_error"] == 6.43
    rows = [json.loads(line) for line in (tmp_path / "sweep/3_resnet110-A_seed=2/metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] == pytest.approx(0.01)  # ResNet-110 starts with the warm-up lr
    plain = [json.loads(line) for line in (tmp_path / "sweep/0_plain20_seed=1/metrics.jsonl").read_text().splitlines()]
    assert plain[-1]["lr"] == pytest.approx(0.1)
    # The sweep's summary: one line per net over its 2 seeds, with the paper's number beside.
    assert "mean ± std (n) over the seeds of the finished runs" in result.stdout
    (line,) = [x for x in result.stdout.splitlines() if "resnet-A" in x and " 110 " in x and "2 finished" in x]
    assert " ± " in line and "(2)" in line and "6.43" in line


def test_mean_std_over_seeds():
    assert mean_std([9.6, 9.8, 10.0]) == "9.80 ± 0.20"
    assert mean_std([7.0, None]) == "7.00" and mean_std([]) == "-"
