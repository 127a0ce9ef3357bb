"""Several processes, one run: torchrun/DDP on the CPU (gloo), the device rule of parallel sweeps,
SLURM's launcher run locally."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resexp.cli import main
from resexp.report.events import grad_norm_series
from resexp.track.logger import read_metrics
from resexp.train import checkpoint as ckpt
from resexp.train.distributed import resolve_device
from resexp.train.loop import train
from tests.conftest import TINY
from tests.test_reliability import rows, scalar_steps


def torchrun(tmp_path, *overrides, wait=True):
    """`torchrun --standalone --nproc_per_node=2 -m resexp train TINY ... hydra.run.dir=run` in tmp_path."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "resexp", "train", *TINY, "hydra.run.dir=run", *overrides]
    env = {**os.environ, "COLUMNS": "200"}
    if not wait:
        return subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def test_two_ranks_train_as_one_process_with_their_global_batch(tmp_path, compose_cfg):
    """2 ranks x 32 images = one process x 64: without batch norm (whose statistics are per rank) the
    losses and gradient norms agree to float rounding, the paper's warm-up included (it ends on the global
    batch's error, at the same step on every rank). One run directory, one event file, from rank 0."""
    same = ["model.norm=none", "trainer.epochs=5", "trainer.eval_every=4",
            "warmup.lr=0.01", "warmup.until_error=85", "warmup.window=2"]
    result = torchrun(tmp_path, *same)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    run = tmp_path / "run"
    assert len(list(run.rglob("events.out.tfevents.*"))) == 1
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished"
    assert result.stdout.count("finished") == 1  # one summary, from rank 0

    one = train(compose_cfg(*same), tmp_path / "one")
    assert status["warmup_ended_at"] == one["warmup_ended_at"] == 8
    two, one = read_metrics(run), read_metrics(tmp_path / "one")
    assert [r["step"] for r in two] == [r["step"] for r in one] == [4, 8, 12, 16, 20]
    for key in ("train_loss", "train_error", "test_loss", "test_error"):
        assert [r[key] for r in two] == pytest.approx([r[key] for r in one], rel=1e-5), key
    norms_two, norms_one = grad_norm_series(run), grad_norm_series(tmp_path / "one")
    assert norms_two.keys() == norms_one.keys() == set(range(2, 21, 2))
    for s in norms_one:  # a layer's norm sums its gradient in another order on each rank: rounding grows with steps
        assert norms_two[s] == pytest.approx(norms_one[s], rel=1e-3)


@pytest.mark.slow  # ~12 s: two ranks, DDP over gloo, the emulated graph
def test_two_ranks_replay_a_graph_of_their_ddp_step_as_they_train_eagerly(tmp_path):
    """DDP inside the (emulated) graph: 11 eager steps, the capture, replays whose all-reduce still
    averages the ranks' gradients; batch norm on, crop and flip drawn on each rank."""
    same = ["trainer.epochs=5", "trainer.eval_every=4", "dataset.augment.flip=true", "dataset.augment.crop_padding=2"]
    (tmp_path / "eager").mkdir(), (tmp_path / "graph").mkdir()
    for name, extra in (("eager", []), ("graph", ["trainer.cuda_graph=emulate"])):
        result = torchrun(tmp_path / name, *same, *extra)
        assert result.returncode == 0, result.stderr[-2000:]
    status = json.loads((tmp_path / "graph" / "run" / "status.json").read_text())
    assert status["modes"]["cuda_graph"] == "emulated: captured"
    assert rows(tmp_path / "graph" / "run") == rows(tmp_path / "eager" / "run")


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()]


@pytest.mark.slow
def test_sigterm_to_one_rank_checkpoints_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    proc = torchrun(tmp_path, "trainer.epochs=100", wait=False)  # 400 steps, a log point every 2
    deadline = time.time() + 120
    while not ckpt.checkpoint_paths(run):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    rank0 = json.loads((run / "status.json").read_text())["pid"]
    rank1 = [pid for pid in _children(proc.pid) if pid != rank0]
    assert len(rank1) == 1
    os.kill(rank1[0], signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert "torchrun --nproc_per_node=2 -m resexp train resume=" in out
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted" and status["step"] < 400
    assert ckpt.checkpoint_paths(run)[-1].name == f"step_{status['step']:08d}.pt"

    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                              "-m", "resexp", "train", "resume=run"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert [s for s, _ in scalar_steps(run, "train/lr")] == list(range(2, 401, 2))  # each log point once
    assert len(list(run.rglob("events.out.tfevents.*"))) == 2  # one per session (rank 0's), as one process makes


def test_global_batch_must_split_over_the_ranks(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", *TINY, "trainer.batch_size=63"]) == 2
    assert ("trainer.batch_size=63 does not split over 2 processes (WORLD_SIZE); choose a multiple of 2"
            in capsys.readouterr().err)
    assert main(["train", "-m", *TINY, "depth=8,14"]) == 2
    assert "torchrun runs one training job over several processes; drop -m" in capsys.readouterr().err


@pytest.mark.parametrize("name,gpus,slot,world,expected", [
    ("auto", 0, 3, 1, "cpu"),
    ("auto", 4, 0, 1, "cuda:0"),
    ("auto", 4, 6, 1, "cuda:2"),  # sweep job 6 on 4 GPUs: jobs share GPUs round-robin
    ("auto", 2, 1, 2, "cuda:1"),  # torchrun's local rank 1
    ("cuda", 2, 1, 2, "cuda:1"),
    ("cuda", 2, 1, 1, "cuda:1"),  # sweep job 1: always indexed (set_device refuses a bare "cuda")
    ("cuda", 1, 0, 1, "cuda:0"),
    ("cpu", 2, 1, 2, "cpu"),
])
def test_device_rule_puts_each_job_or_rank_on_its_own_gpu(monkeypatch, name, gpus, slot, world, expected):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    assert resolve_device(name, gpus, slot) == expected


@pytest.mark.slow
def test_sweep_through_submitit_local_lists_both_jobs(tmp_path, resexp_cli):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = resexp_cli("train", "-m", *TINY, "hydra/launcher=submitit_local", "model=plain,resnet",
                        "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "plain8" in result.stdout and "resnet8-A" in result.stdout
    assert result.stdout.count("finished") >= 2
    for job in ("0_plain8", "1_resnet8-A"):
        assert json.loads((tmp_path / "sweep" / job / "status.json").read_text())["status"] == "finished"


def test_shipped_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_module
    with initialize_config_module("resexp.conf", version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.max_num_timeout) == ("gpu", 1, 3)


def test_device_slot_is_the_sweep_job_number_or_the_local_rank(monkeypatch):
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from resexp.train.distributed import device_slot
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with initialize_config_module("resexp.conf", version_base="1.3"):
        cfg = compose("train", return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode, cfg.hydra.job.num = RunMode.MULTIRUN, 5
    HydraConfig.instance().set_config(cfg)
    try:
        assert device_slot() == 5
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", "1")
        assert device_slot() == 1
    finally:
        HydraConfig.instance().cfg = None
