"""Never lose a run: checkpoints, resume, divergence, interruption (issue 4)."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resexp.cli import main
from resexp.errors import UserError
from resexp.train import checkpoint as ckpt
from resexp.train.interrupt import StopRequest
from resexp.train.loop import Diverged, train
from tests.conftest import DEVICES, TINY

DIVERGING = ["model=plain", "depth=56", "model.norm=none", "model.init=scaled_identity", "model.init_alpha=1.5"]


def rows(run_dir):
    out = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in out:
        row.pop("time")
    return out


def scalar_steps(run_dir, tag):
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


class StopAfterRows:
    """Stands in for Ctrl-C: turns true once the run has logged `n` metrics rows."""

    signum = signal.SIGINT

    def __init__(self, run_dir, n):
        self.run_dir, self.n = run_dir, n

    def __bool__(self):
        path = self.run_dir / "metrics.jsonl"
        return path.exists() and len(path.read_text().splitlines()) >= self.n


@pytest.mark.parametrize("device", DEVICES)
def test_resumed_run_matches_uninterrupted_step_for_step(compose_cfg, tmp_path, device):
    # 256 images / batch 64 = 4 steps an epoch; 2 epochs; evaluate every 3 steps -> rows at 3, 6, 8.
    # On a GPU the step is a CUDA graph (captured again after the resume) and the run deterministic=true.
    cfg = compose_cfg("trainer.epochs=2", "trainer.eval_every=3", "trainer.log_every=1", *device)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    expected = train(cfg, whole)
    with pytest.raises(Exception, match="interrupted at step 3"):  # stops mid-epoch
        train(cfg, parts, StopAfterRows(parts, 1))
    assert [p.name for p in ckpt.checkpoint_paths(parts)] == ["step_00000003.pt"]
    resumed = train(cfg, parts)
    for result in (expected, resumed):
        result.pop("wall_time")
    assert resumed == expected
    if device != ["device=cpu"]:  # the graph was captured again after the resume, not silently skipped
        assert resumed["modes"]["cuda_graph"] in ("captured", "emulated: captured")
    assert rows(parts) == rows(whole) and [r["step"] for r in rows(parts)] == [3, 6, 8]
    for tag in ("train/loss", "weight_grad_norm/000_conv1", "test/error"):
        assert scalar_steps(parts, tag) == scalar_steps(whole, tag)  # one curve, no duplicated steps


def test_checkpoints_are_kept_k_and_written_atomically(compose_cfg, tmp_path, monkeypatch):
    cfg = compose_cfg("trainer.epochs=3", "trainer.keep_checkpoints=2")
    train(cfg, tmp_path)
    assert [p.name for p in ckpt.checkpoint_paths(tmp_path)] == ["step_00000008.pt", "step_00000012.pt"]
    latest = ckpt.checkpoint_paths(tmp_path)[-1]
    before = latest.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    state = ckpt.load_checkpoint(latest, "cpu")
    state["step"] = 16
    with pytest.raises(UserError, match=r"could not write checkpoint .*step_00000016.pt: the disk is full; "
                                        r"free space .* resume with: resexp train resume="):
        ckpt.save_checkpoint(tmp_path, state, keep=2)
    assert latest.read_bytes() == before  # the previous checkpoint is whole
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000008.pt", "step_00000012.pt"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_divergence_is_caught_with_its_step(compose_cfg, tmp_path, seed):
    with pytest.raises(Diverged) as caught:
        train(compose_cfg(*DIVERGING, f"seed={seed}"), tmp_path)
    assert caught.value.step == 1  # alpha**55 ~ 5e9: the very first loss is ~1e8
    assert not ckpt.checkpoint_paths(tmp_path)  # nothing non-finite is saved


def test_sweep_goes_on_past_a_diverged_job_and_shows_it(tmp_path, resexp_cli):
    result = resexp_cli("train", "-m", *TINY, "model=plain", "model.norm=none", "model.init=scaled_identity",
                        "model.init_alpha=1.5", "depth=8,56", "hydra.sweep.dir=sweep")
    assert result.returncode == 1  # not every job finished
    status = {p.name: json.loads((p / "status.json").read_text()) for p in (tmp_path / "sweep").iterdir()
              if p.is_dir()}
    assert status["0_plain8"]["status"] == "finished"
    assert status["1_plain56"]["status"] == "diverged" and status["1_plain56"]["step"] >= 1
    summary = result.stdout[result.stdout.index("sweep sweep"):]
    assert "1_plain56" in summary and "diverged" in summary and "finished" in summary


@pytest.mark.slow  # ~14 s: `python -m pytest -m slow`
def test_rerun_sweep_job_resumes_and_finished_jobs_are_not_redone(tmp_path, resexp_cli):
    args = ["train", "-m", *TINY, "depth=8", "hydra.sweep.dir=sweep"]
    assert resexp_cli(*args).returncode == 0
    job = tmp_path / "sweep" / "0_resnet8-A"
    before = (job / "metrics.jsonl").read_text()
    again = resexp_cli(*args)
    assert again.returncode == 0 and "already finished" in again.stdout  # nothing to resume, nothing redone
    assert (job / "metrics.jsonl").read_text() == before


def _start_training(tmp_path, *extra):
    exe = os.path.join(os.path.dirname(sys.executable), "resexp")
    args = [exe, "train", *TINY, "trainer.epochs=400", "hydra.run.dir=run", *extra]
    return subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=120, poll=0.2):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None and time.time() < deadline, "training ended before the condition"
        time.sleep(poll)


# SIGTERM goes through the same handler as Ctrl-C (~9 s): `python -m pytest -m slow` runs it
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130),
                                         pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)])
def test_ctrl_c_and_sigterm_checkpoint_then_resume_is_offered(tmp_path, resexp_cli, signum, code):
    run = tmp_path / "run"
    proc = _start_training(tmp_path)
    _wait_for(lambda: ckpt.checkpoint_paths(run), proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "resexp train resume=" in out and "Traceback" not in out + err
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted"
    assert ckpt.checkpoint_paths(run)[-1].name == f"step_{status['step']:08d}.pt"
    done = resexp_cli("train", "resume=run", "depth=14")
    assert done.returncode == 2 and "drop the other overrides: depth=14" in done.stderr


@pytest.mark.slow  # ~20-30 s: `python -m pytest -m slow`
def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path, resexp_cli):
    run = tmp_path / "run"
    # 40 epochs x 4 steps: killed soon after the first checkpoint (step 4), with ~150 steps to spare.
    proc = _start_training(tmp_path, "trainer.epochs=40", "trainer.log_every=1")
    _wait_for(lambda: ckpt.checkpoint_paths(run), proc, poll=0.02)
    proc.kill()
    proc.wait()
    saved_step = int(ckpt.checkpoint_paths(run)[-1].stem.split("_")[1])
    assert json.loads((run / "status.json").read_text())["status"] == "running"  # what a kill leaves
    resumed = resexp_cli("train", "resume=run")
    assert resumed.returncode == 0, resumed.stderr
    assert f"step_{saved_step:08d}.pt" in resumed.stdout
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    steps = [s for s, _ in scalar_steps(run, "train/lr")]
    assert steps == list(range(1, 161))  # every step logged exactly once
    assert [r["step"] for r in rows(run)] == list(range(4, 161, 4))


def _finished_run(tmp_path, *extra):
    assert main(["train", *TINY, "hydra.run.dir=" + str(tmp_path / "run"), *extra]) == 0
    return tmp_path / "run"


def test_corrupt_checkpoint_is_one_line_and_left_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _finished_run(tmp_path)
    latest = ckpt.checkpoint_paths(run)[-1]
    latest.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["train", f"resume={run}", "trainer.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"checkpoint {latest} is corrupt or unreadable" in err
    assert latest.read_bytes() == b"not a checkpoint"


class RunsCode:
    """Unpickling this calls open(path, "w"): a stand-in for any code a tampered checkpoint could run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("command", ["train", "lesion", "landscape", "paths"])
def test_a_tampered_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch, capsys, command):
    """Checkpoints are data: one holding a class or function is refused before it can run anything."""
    monkeypatch.chdir(tmp_path)
    run = _finished_run(tmp_path)
    marker = tmp_path / "code-ran"
    latest = ckpt.checkpoint_paths(run)[-1]
    state = torch.load(latest, weights_only=True)
    state["model"]["fc.bias"] = RunsCode(marker)
    torch.save(state, latest)
    capsys.readouterr()
    assert main(["train", f"resume={run}", "trainer.epochs=2"] if command == "train" else [command, str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"checkpoint {latest} holds more than tensors and plain values" in err
    assert not marker.exists()


def test_checkpoint_from_another_model_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _finished_run(tmp_path)
    other = tmp_path / "other"
    assert main(["train", *TINY, "depth=14", f"hydra.run.dir={other}"]) == 0
    foreign = ckpt.checkpoint_paths(other)[-1]
    for path in ckpt.checkpoint_paths(run):
        path.unlink()
    (run / "checkpoints" / foreign.name).write_bytes(foreign.read_bytes())
    capsys.readouterr()
    assert main(["train", f"resume={run}", "trainer.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match this run's model" in err


@pytest.mark.slow  # ~20-30 s: `python -m pytest -m slow`
def test_sweep_of_fifty_tiny_jobs_accounts_for_every_run(tmp_path, resexp_cli):
    result = resexp_cli("train", "-m", "dataset.train_size=64", "dataset.test_size=32", "dataset.image_size=8",
                        "trainer.epochs=1", "trainer.batch_size=64", "depth=8", "model.width=4", "device=cpu",
                        "seed=range(0,50)", "hydra.sweep.dir=sweep", timeout=600)
    assert result.returncode == 0, result.stderr
    jobs = sorted((tmp_path / "sweep").glob("*_resnet8-A_*"), key=lambda p: int(p.name.split("_")[0]))
    assert [j.name for j in jobs] == [f"{n}_resnet8-A_seed={n}" for n in range(50)]  # the swept key names them
    assert all(json.loads((j / "status.json").read_text())["status"] == "finished" for j in jobs)
    summary = result.stdout[result.stdout.index("sweep sweep"):]
    assert "50 finished" in summary  # one configuration over 50 seeds: one row counting every run


def test_second_interrupt_exits_at_once(monkeypatch):
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a shell's background job
    with StopRequest() as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGINT)
        assert stop and stop.signum == signal.SIGINT and exits == []
        os.kill(os.getpid(), signal.SIGINT)
        assert exits == [130]
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_a_run_saved_before_the_family_records_still_resumes_and_opens(tmp_path, monkeypatch, capsys):
    """Runs saved when every model group carried every family's keys (plain with shortcut: A) still train
    longer and open in the explain commands: the keys their family does not have are dropped on reading."""
    from omegaconf import OmegaConf
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "model=plain", "hydra.run.dir=old"]) == 0
    saved = OmegaConf.load(tmp_path / "old/config.yaml")
    saved.model.shortcut, saved.model.block_order = "A", "original"  # as older resexp wrote them
    OmegaConf.save(saved, tmp_path / "old/config.yaml")
    capsys.readouterr()
    assert main(["lesion", "old", "--out", "l"]) == 0
    assert main(["train", "resume=old", "trainer.epochs=2"]) == 0
    assert json.loads((tmp_path / "old/status.json").read_text())["steps"] == 8
