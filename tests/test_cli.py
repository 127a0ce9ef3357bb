"""The command line as a user types it: real subprocesses, event files read back."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resexp.cli import COMMANDS, main
from tests.conftest import TINY, refused


def run_dirs(root: Path):
    return sorted(p.parent for p in root.rglob("status.json"))


def test_resexp_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def test_train_subprocess_writes_run_dir_with_tensorboard_tags(tmp_path, resexp_cli):
    result = resexp_cli("train", *TINY, "model=resnet")
    assert result.returncode == 0, result.stderr
    (run,) = run_dirs(tmp_path / "runs")
    # model and depth, then every overridden key that is not where/how it runs (device), abbreviated
    assert run.name.endswith("_resnet8-A_train_size=256_test_size=128_image_size=8_epochs=1_bs=64_log_every=2_precision=fp32")
    assert (run / "config.yaml").exists()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and status["parameters"] > 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["step"] == 4  # 256 images / batch 64 = 4 steps, one epoch
    assert set(rows[0]) >= {"step", "epoch", "train_error", "train_loss", "test_error", "test_loss", "lr", "time"}
    assert 0 <= rows[0]["test_error"] <= 100
    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/error", "train/loss", "test/error", "test/loss", "train/lr", "train/images_per_s"} <= tags
    grad_tags = sorted(t for t in tags if t.startswith("weight_grad_norm/"))
    # resnet-8: conv1, 3 stages x 1 block x 2 convs, fc = 8 weighted layers (option A has no projections).
    assert grad_tags[0] == "weight_grad_norm/000_conv1" and grad_tags[-1] == "weight_grad_norm/007_fc"
    assert len(grad_tags) == 8
    assert [e.step for e in events.Scalars("weight_grad_norm/000_conv1")] == [2, 4]  # every log_every=2 steps
    assert [e.step for e in events.Scalars("train/error")] == [2, 4]  # the training curve too
    assert events.Scalars("test/error")[0].value == pytest.approx(rows[0]["test_error"])
    assert "finished" in result.stdout


def test_multirun_makes_one_run_dir_per_job_and_a_summary(tmp_path, resexp_cli):
    result = resexp_cli("train", "-m", *TINY, "model=plain,resnet", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr
    dirs = run_dirs(tmp_path / "sweep")
    assert [d.name for d in dirs] == ["0_plain8", "1_resnet8-A"]
    assert "sweep sweep" in result.stdout and result.stdout.count("finished") >= 2


@pytest.mark.slow  # ~20-30 s: `python -m pytest -m slow`
def test_parallel_sweep_shares_the_cores(tmp_path, resexp_cli):
    """hydra/launcher=parallel (Hydra's joblib launcher): two jobs at once, each on its share of the cores."""
    import os
    result = resexp_cli("train", "-m", *TINY, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                        "model=plain,resnet", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr
    assert [d.name for d in run_dirs(tmp_path / "sweep")] == ["0_plain8", "1_resnet8-A"]
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    for d in run_dirs(tmp_path / "sweep"):
        status = json.loads((d / "status.json").read_text())
        assert status["status"] == "finished"
        assert status["modes"]["side_by_side"] == f"2 jobs at once, {threads} thread{'s' * (threads > 1)} each"


def test_the_parallel_launcher_starts_the_costliest_jobs_first_and_keeps_their_numbers(tmp_path, resexp_cli):
    """A sweep listed shallow-first starts its deepest net first (one job at a time here, so the order is
    the start order); each run keeps the number and name the sweep gives it, and the summary lists all."""
    result = resexp_cli("train", "-m", *TINY, "model=plain", "depth=8,14,20", "hydra/launcher=parallel",
                        "hydra.launcher.n_jobs=1", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr
    dirs = run_dirs(tmp_path / "sweep")
    assert [d.name for d in dirs] == ["0_plain8", "1_plain14", "2_plain20"]
    started = sorted(dirs, key=lambda d: (d / "overrides.yaml").stat().st_mtime_ns)
    assert [d.name for d in started] == ["2_plain20", "1_plain14", "0_plain8"]
    assert all(json.loads((d / "status.json").read_text())["status"] == "finished" for d in dirs)
    assert result.stdout.startswith("sweep of 3 jobs, 1 at once on "), result.stdout[:200]


def test_job_cost_counts_the_images_trained_on_times_the_nets_multiply_adds():
    from resexp.sweep import EPOCH_IMAGES, compose_job, hydra_initialized, job_cost, longest_first
    with hydra_initialized():
        cost = {o: job_cost(compose_job(o.split())) for o in (
            "model=resnet depth=20 trainer.steps=10 trainer.batch_size=8",
            "model=resnet depth=20 trainer.steps=20 trainer.batch_size=8",
            "model=resnet depth=56 trainer.steps=10 trainer.batch_size=8",
            "model=resnet depth=20 trainer.steps=10 trainer.batch_size=16",
            "model=resnet depth=20 trainer.epochs=2 trainer.steps=null dataset.train_size=40",
            "model=resnet depth=20 dataset=fashion_mnist trainer.epochs=1 trainer.steps=null",
            f"model=resnet depth=20 dataset=fashion_mnist trainer.steps={EPOCH_IMAGES // 8} trainer.batch_size=8")}
    short, long_, deep, wide_batch, epochs, fashion_epoch, fashion_steps = cost.values()
    assert long_ == wide_batch == 2 * short
    # At 16x16 every 3x3 conv of a stage costs M = 16*16*9*256 multiply-adds but the two that halve the map
    # (M/2 each) and conv1 (3 input channels: 3M/16): (6n - 2 + 1 + 3/16) M, n = 9 against n = 3.
    assert deep / short == pytest.approx((53 + 3 / 16) / (17 + 3 / 16), rel=1e-3)
    assert epochs == short  # 2 epochs of 40 images: 80, as 10 steps of 8
    assert fashion_epoch == fashion_steps  # a dataset without train_size counts EPOCH_IMAGES an epoch
    assert longest_first([1.0, 3.0, 2.0, 3.0]) == [1, 3, 2, 0]


@pytest.mark.parametrize("override,expected", [
    ("depth=21", "depth=21 is not of the form 6n+2 with n >= 1; nearest valid depths: 20, 26"),
    ("model.activation=swish", "model.activation='swish' is invalid; choose one of: relu, leaky_relu"),
    ("model.shortcut=E", "model.shortcut='E' is invalid; choose one of: A, B, C, A_pool, D"),
    ("optimizer.lr=0", "optimizer.lr=0 is invalid; it must be a positive number"),
    ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is invalid"),
    ("trainer.batch_size=0", "trainer.batch_size=0 is invalid; it must be a positive integer"),
    ("trainer.epochs=-1", "trainer.epochs=-1 is invalid"),
    ("trainer.epochs=abc", "trainer.epochs='abc' is invalid"),
    ("model=alexnet", "model=alexnet is not a known model; choose one of: "),
    ("optimizer=lbfgs", "optimizer=lbfgs is not a known optimizer; choose one of: adam, sgd"),
    ("+experiment=nope", "experiment=nope is not a known experiment; choose one of: "),
    ("trainer.epochz=3", "trainer.epochz"),
    ("device=tpu", "device='tpu' is invalid; choose one of: auto, cpu, cuda"),
    ("depth=20,32", "add -m"),
    ("depth=abc", "depth='abc' must be an integer"),
    ("seed=1.5", "seed=1.5 is invalid; it must be an integer"),
    ("model.init=zeros", "model.init='zeros' is invalid; choose one of: kaiming_normal, kaiming, kaiming_uniform"),
    ("model.init_alpha=0", "model.init_alpha=0 is invalid; it must be a positive number"),
    ("model.norm=instance", "model.norm='instance' is invalid; choose one of: batch, group, layer, none"),
    ("trainer.checkpoint_every=0", "trainer.checkpoint_every=0 is invalid; it must be a positive integer"),
    ("trainer.keep_checkpoints=0", "trainer.keep_checkpoints=0 is invalid"),
    ("trainer.log_every=2.5", "trainer.log_every=2.5 is invalid; it must be a positive integer"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1 is invalid; it must be a number >= 0"),
    ("dataset.image_size=4", "dataset.image_size must be >= 8"),
    ("resume=nowhere", "resume=nowhere: no run there (no config.yaml)"),
    ("hydra.run.dir=README.md/run", "hydra.run.dir=README.md/run cannot be created:"),
    ("schedule.milestones=[0.5,1.5]", "schedule.milestones=[0.5, 1.5] is invalid"),
])
def test_bad_input_is_one_clear_line(override, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("a file where a directory is asked for")
    assert main(["train", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert expected in err
    assert not (tmp_path / "runs").exists()


def test_resume_refuses_a_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", "resume=runs/x"]) == 2
    assert "resume= continues one run; drop -m" in capsys.readouterr().err


def test_bad_sweep_value_fails_before_any_job_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", "model=plain,alexnet"]) == 2
    assert "model=alexnet is not a known model" in capsys.readouterr().err


def test_bad_input_subprocess_exit_code_and_no_traceback(resexp_cli):
    result = resexp_cli("train", "depth=33")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip() == "error: depth=33 is not of the form 6n+2 with n >= 1; nearest valid depths: 32, 38"


def test_existing_run_directory_is_never_overwritten(tmp_path, resexp_cli):
    args = ["train", *TINY, "hydra.run.dir=runs/fixed"]
    assert resexp_cli(*args).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "runs/fixed").iterdir() if p.is_file()}
    again = resexp_cli(*args, "seed=5")
    assert again.returncode != 0
    assert "already holds a different run (seed=0, not 5)" in again.stderr
    after = {p.name: p.read_bytes() for p in (tmp_path / "runs/fixed").iterdir() if p.is_file()}
    assert after == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_bad_flag_in_one_line(command, capsys):
    """One convention for all: the line names the command and says where its arguments are listed."""
    err = refused(capsys, command, "--no-such-flag")
    assert f"resexp {command}" in err and f"see resexp {command} --help" in err


def test_usage_lists_every_command_of_the_table(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_load_no_torch(flag):
    code = f"import sys; from resexp.cli import main; main([{flag!r}]); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "False", done.stdout + done.stderr
