"""A run you can trust, follow and recover (issue 23): no record lost by a failed attempt, dead runs shown
and restarted, places checked before any work, runs followable, trained longer, bad input in one line."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resexp.cli import main
from resexp.config import group_options
from resexp.files import claim_new_dir
from resexp.track.status import read_status
from resexp.train import checkpoint as ckpt
from tests.conftest import TINY, refused, small_net


def _run(tmp_path, name="run", *extra) -> Path:
    assert main(["train", *TINY, f"hydra.run.dir={tmp_path / name}", *extra]) == 0
    return tmp_path / name


def _snapshot(run: Path) -> dict:
    """Every file of a run directory and its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


# --- records are never rewritten by a failure (items 2, 3) ---

def test_a_failed_attempt_to_train_a_finished_run_longer_leaves_its_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path)
    latest = ckpt.checkpoint_paths(run)[-1]
    latest.write_bytes(latest.read_bytes()[:1000])  # cut short
    before = _snapshot(run)
    capsys.readouterr()
    assert main(["train", f"resume={run}", "trainer.epochs=2"]) == 2
    assert f"checkpoint {latest} is corrupt or unreadable" in _one_error_line(capsys)
    assert _snapshot(run) == before  # status (final errors, parameters, wall time), config, metrics as they were


def test_a_cut_or_broken_metrics_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path, "run", "trainer.epochs=2", "trainer.eval_every=2")
    metrics = run / "metrics.jsonl"
    rows = metrics.read_text().splitlines()
    metrics.write_text(rows[0] + "\n" + rows[1][:20] + "\n" + "\n".join(rows[2:]) + "\n")  # a broken middle row
    before = _snapshot(run)
    capsys.readouterr()
    assert main(["train", f"resume={run}", "trainer.epochs=3"]) == 2
    assert f"{metrics} line 2 is not a metrics row" in _one_error_line(capsys)
    assert _snapshot(run) == before
    metrics.write_text("\n".join(rows) + "\n" + rows[-1][:30])  # a last row cut by a kill mid-write
    assert main(["train", f"resume={run}", "trainer.epochs=3"]) == 0
    assert [json.loads(r)["step"] for r in metrics.read_text().splitlines()] == [2, 4, 6, 8, 10, 12]


def test_a_rerun_of_a_finished_run_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path)
    before = _snapshot(run)
    assert main(["train", *TINY, f"hydra.run.dir={run}"]) == 0
    assert main(["train", f"resume={run}"]) == 0
    assert "already finished (4 steps); left as it is" in capsys.readouterr().out
    assert _snapshot(run) == before  # no new wall time, no new event file


def test_newest_corrupt_checkpoint_falls_back_to_the_older_intact_one(tmp_path, monkeypatch, capsys, tiny_runs):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path, "run", "trainer.epochs=2")
    older, newest = ckpt.checkpoint_paths(run)
    newest.write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["lesion", str(run), "--draws", "1", "--out", "lesion", "--json"]) == 0
    assert json.loads((tmp_path / "lesion/lesion.json").read_text())[0]["checkpoint"] == older.name
    assert f"checkpoint {newest} is corrupt or unreadable" in capsys.readouterr().err
    assert main(["train", f"resume={run}", "trainer.epochs=3"]) == 0
    said = capsys.readouterr()
    assert f"using {older.name}, the newest intact one" in said.err
    assert f"resuming {run} (finished) from {older.name}" in said.out  # the one it uses, not the newest
    assert read_status(run)["steps"] == 12


def test_a_run_killed_before_its_first_checkpoint_shows_as_killed_and_runs_again(tmp_path, monkeypatch, capsys):
    """What `kill -9` leaves before the first checkpoint: status `running` of a process that is gone, some
    metrics and events, no checkpoint. Re-running the same command trains it from step 0."""
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path, "run", "trainer.eval_every=2")
    for path in ckpt.checkpoint_paths(run):
        path.unlink()
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": _dead_pid()}))
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    assert read_status(run)["status"] == "killed"
    assert main(["status", str(tmp_path)]) == 0
    assert "killed (process gone" in capsys.readouterr().out
    assert main(["train", *TINY, "trainer.eval_every=2", f"hydra.run.dir={run}"]) == 0
    assert "restarting" in capsys.readouterr().out
    assert read_status(run)["status"] == "finished"
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [2, 4]


def test_a_run_still_training_is_not_claimed_twice(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path)
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getppid()}))
    before = _snapshot(run)
    assert main(["train", *TINY, f"hydra.run.dir={run}"]) == 2
    assert "is being trained by process" in _one_error_line(capsys)
    assert _snapshot(run) == before


# --- report on a broken record (item 4) ---

def test_report_reads_a_sweep_with_a_cut_metrics_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path, "sweep/0_a")
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 8, "epo')
    assert main(["report", str(tmp_path / "sweep")]) == 0


# --- places checked before any work, claimed atomically (items 5, 6, 7) ---

def _read_only(monkeypatch, path: Path) -> Path:
    """`path` as a read-only directory (tests run as root too, where chmod would not stop a write)."""
    path.mkdir(exist_ok=True)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p).absolute() != path and real(p, mode, **kw))
    return path


@pytest.mark.parametrize("args", [["train", *TINY], ["train", "-m", *TINY, "depth=8,14"],
                                  ["gradients", *TINY], ["bench", "--json", "x.json", "--depths", "8"]],
                         ids=["train", "sweep", "gradients", "bench"])
def test_a_read_only_working_directory_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, args):
    read_only = _read_only(monkeypatch, tmp_path / "ro")
    monkeypatch.chdir(read_only)
    from resexp import bench
    monkeypatch.setattr(bench, "time_modes", lambda *a, **k: pytest.fail("benchmarked before checking --json"))
    assert main(args) == 2
    assert "cannot be written" in _one_error_line(capsys)
    assert list(read_only.iterdir()) == []


def test_report_into_a_read_only_run_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _read_only(monkeypatch, _run(tmp_path))
    before = _snapshot(run)
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    assert f"report directory {run / 'report'} cannot be written: {run} is not writable" in _one_error_line(capsys)
    assert _snapshot(run) == before


def test_two_commands_in_the_same_second_get_two_directories(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda *a: "2026-01-01_00-00-00")
    for _ in range(2):
        assert main(["gradients", *TINY, "--json"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs/explain").iterdir()) == [
        "gradients-2026-01-01_00-00-00", "gradients-2026-01-01_00-00-00-2"]
    assert claim_new_dir(tmp_path / "x") != claim_new_dir(tmp_path / "x")


def test_a_run_that_fails_before_any_work_leaves_no_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "trainer.batch_size=512"]) == 2
    assert "larger than the training split" in _one_error_line(capsys)
    assert not (tmp_path / "runs").exists()


# --- followable (item 8) ---

def test_a_run_is_followable_from_a_pipe_and_its_log(tmp_path, resexp_cli):
    result = resexp_cli("train", *TINY, "hydra.run.dir=a/run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"run directory: {tmp_path / 'a/run'}"  # first, whole, however narrow the terminal
    assert [line.split()[2] for line in lines if " step " in line] == ["2/4", "4/4"]
    log = (tmp_path / "a/run/train.log").read_text()
    assert log.startswith(lines[0]) and "resnet8-A step 4/4 epoch 1.0 loss" in log and "finished" in log


# --- train longer (item 10) ---

def test_train_a_finished_run_longer(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path)
    assert main(["train", f"resume={run}", "trainer.epochs=3"]) == 0
    status = read_status(run)
    assert status["status"] == "finished" and status["steps"] == 12
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [4, 8, 12]
    capsys.readouterr()
    assert "does not train" in refused(capsys, "train", f"resume={run}", "trainer.epochs=2")
    assert "drop the other overrides: depth=14" in refused(capsys, "train", f"resume={run}", "trainer.epochs=4",
                                                          "depth=14")


# --- bad input in one line (items 9, 10) ---

@pytest.mark.parametrize("args,says", [
    (["schedule.milestones=[0.9,0.5]"], "list them in increasing order"),
    (["experiment=degradation_quick"], "add -m to run its sweep"),
    (["modle=resnet"], "modle is not a config key; did you mean model?"),
    (["trainer.stpes=3"], "did you mean trainer.steps?"),
    (["model=resnt"], "did you mean resnet?"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args, says):
    monkeypatch.chdir(tmp_path)
    assert says in refused(capsys, "train", *TINY, *args)
    assert not (tmp_path / "runs").exists()


def test_lesion_refuses_a_net_without_deletable_blocks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path, "dense", "model=densenet", "depth=40", "model.width=8", "model.growth=4")
    capsys.readouterr()
    assert "has no block that can be deleted" in refused(capsys, "lesion", str(run))
    assert not (tmp_path / "runs").exists()


def test_the_command_line_itself(resexp_cli, monkeypatch):
    bare = resexp_cli()
    assert bare.returncode == 2 and "commands:" in bare.stderr
    version = resexp_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("resexp ")
    monkeypatch.setenv("RESEXP_DEBUG", "1")
    exe = os.path.join(os.path.dirname(sys.executable), "resexp")
    debug = subprocess.run([exe, "train", "depth=21"], capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr  # the traceback, the same exit code


# --- the CPU is deterministic, for every family (item 1) ---

@pytest.mark.parametrize("family", group_options("model"))
def test_the_cpu_trains_every_family_the_same_twice(compose_cfg, tmp_path, family):
    """Bit-identical weights from two runs of the same config on the CPU, in the layout `auto` picks there
    (channels_last at width 8, where no strided 1x1 convolution has fewer than 8 channels)."""
    import torch
    from resexp.train.loop import train
    cfg = compose_cfg(*small_net(family), "model.width=8", "trainer.batch_size=16",
                      "dataset.image_size=16", "trainer.channels_last=auto", "trainer.log_every=1")
    weights = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        assert train(cfg, tmp_path / attempt)["modes"]["channels_last"]
        weights.append(torch.load(ckpt.checkpoint_paths(tmp_path / attempt)[-1], weights_only=True)["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# --- output that goes away: `resexp ... | head` ---

def _with_closed_stdout(tmp_path, *args) -> subprocess.CompletedProcess:
    """`resexp ARGS` whose stdout is a pipe nobody reads any more (its reader closed it, as `head` does)."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("RESEXP_DEBUG", None)
    exe = os.path.join(os.path.dirname(sys.executable), "resexp")
    try:
        proc = subprocess.run([exe, *args], cwd=tmp_path, stdout=write, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=300)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    return proc


def test_a_run_whose_output_goes_away_trains_to_the_end(tmp_path):
    proc = _with_closed_stdout(tmp_path, "train", *TINY, "hydra.run.dir=run")
    assert proc.returncode == 0
    assert read_status(tmp_path / "run")["status"] == "finished"
    assert "resnet8-A step 4/4" in (tmp_path / "run/train.log").read_text()  # the record of what it printed


def test_a_sweep_whose_output_goes_away_runs_every_job(tmp_path):
    proc = _with_closed_stdout(tmp_path, "train", "-m", *TINY, "depth=8,14", "hydra.sweep.dir=sweep")
    assert proc.returncode == 0
    assert [read_status(run)["status"] for run in sorted((tmp_path / "sweep").glob("*_*"))] == ["finished"] * 2


@pytest.mark.slow  # ~6 s: every command through a closed pipe
def test_a_command_whose_output_goes_away_exits_non_zero_without_a_traceback(tmp_path):
    assert _with_closed_stdout(tmp_path, "describe", "--json").returncode == 141  # as the shell says for `head`
    assert _with_closed_stdout(tmp_path, "describe").returncode == 141


# --- a run directory is claimed by one process, never over a user's files ---

def test_two_trains_started_together_on_one_directory_train_it_once(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    exe = os.path.join(os.path.dirname(sys.executable), "resexp")
    # A training split that takes a moment to make: both processes are past their start-up before either trains.
    args = [*TINY, "dataset.train_size=30000", "trainer.steps=8", "trainer.eval_every=4", "hydra.run.dir=run"]
    procs = [subprocess.Popen([exe, "train", *args], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.returncode, out, err) for p in procs for out, err in [p.communicate(timeout=300)]]
    trained = [o for o in outcomes if "training on" in o[1]]
    assert len(trained) == 1 and trained[0][0] == 0, outcomes
    (second,) = [o for o in outcomes if o is not trained[0]]  # refused while the first trains, or finding it done
    assert (second[0] == 2 and "is being trained by another process" in second[2]
            or second[0] == 0 and "already finished" in second[1]), outcomes
    assert [json.loads(r)["step"] for r in (tmp_path / "run/metrics.jsonl").read_text().splitlines()] == [4, 8]
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 1
    assert read_status(tmp_path / "run")["status"] == "finished"


@pytest.mark.parametrize("name", ["metrics.jsonl", "overrides.yaml", "notes.txt"])
def test_a_folder_of_someone_elses_files_is_refused(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / name).write_text("my own\n")
    assert "holds files that are not a resexp run (" + name in refused(capsys, "train", *TINY, "hydra.run.dir=mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == [name]
    assert (tmp_path / "mine" / name).read_text() == "my own\n"
    assert main(["train", "-m", *TINY, "depth=8,14", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=mine"]) == 1
    assert [p.name for p in (tmp_path / "mine").iterdir()] == [name]


# --- places that are files or cannot exist: one line before any work ---

@pytest.mark.parametrize("args,says", [
    (["train", *TINY, "hydra.run.dir=afile"], "hydra.run.dir=afile is a file, not a directory"),
    (["train", *TINY, "hydra.run.dir=/proc/x"], "hydra.run.dir=/proc/x cannot be created: /proc takes no new"),
    (["train", "-m", *TINY, "depth=8,14", "hydra.sweep.dir=/proc/x"], "hydra.sweep.dir=/proc/x cannot be created"),
    (["report", "run", "--out", "/proc/x"], "--out /proc/x cannot be created: /proc takes no new entries"),
    (["report", "run", "--out", "afile"], "--out afile is a file; give a directory"),
    (["compare", "run", "--out", "afile"], "--out afile is a file; give a directory"),
    (["gradients", *TINY, "--out", "/proc/x"], "--out /proc/x cannot be created"),
], ids=["run-dir-file", "run-dir-proc", "sweep-dir-proc", "report-proc", "report-file", "compare-file",
        "gradients-proc"])
def test_a_place_that_is_a_file_or_cannot_exist_is_one_line(tmp_path, monkeypatch, capsys, args, says):
    monkeypatch.chdir(tmp_path)
    if args[0] in ("report", "compare"):
        _run(tmp_path)
        capsys.readouterr()
    (tmp_path / "afile").write_text("mine\n")
    assert says in refused(capsys, *args)
    assert (tmp_path / "afile").read_text() == "mine\n"


@pytest.mark.parametrize("command", ["train", "gradients"])
def test_a_working_directory_that_takes_no_files_is_one_line(monkeypatch, capsys, command):
    monkeypatch.chdir("/proc")  # writable to root as os.access sees it, yet nothing can be made there
    assert "cannot be created: /proc takes no new entries" in refused(capsys, command, *TINY)


@pytest.mark.parametrize("command,name", [("report", "summary.md"), ("report", "runs.csv"),
                                          ("report", "degradation.png"), ("compare", "summary.csv")])
def test_report_never_replaces_a_file_in_out(tmp_path, monkeypatch, capsys, command, name):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / name).write_text("my notes\n")
    capsys.readouterr()
    assert f"--out mine already holds {name}" in refused(capsys, command, str(run), "--out", "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == [name]
    assert (tmp_path / "mine" / name).read_text() == "my notes\n"


@pytest.mark.parametrize("text", ["model:\n  name: [resnet\n", "- a list\n"], ids=["cut", "not-a-mapping"])
@pytest.mark.parametrize("command", [["train", "resume={run}"], ["report", "{run}"], ["lesion", "{run}"]],
                         ids=["resume", "report", "lesion"])
def test_a_damaged_config_yaml_is_one_line(tmp_path, monkeypatch, capsys, text, command):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path)
    (run / "config.yaml").write_text(text)
    before = _snapshot(run)
    capsys.readouterr()
    assert f"{run / 'config.yaml'} " in refused(capsys, *(a.format(run=run) for a in command))
    assert _snapshot(run) == before


def test_a_run_under_a_path_with_spaces_and_any_letters_resumes(tmp_path, monkeypatch, capsys):
    import shlex
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "dir with spaces" / "ü 数据"
    assert main(["train", *TINY, f"hydra.run.dir='{run}'"]) == 0
    assert main(["train", f"resume={run}", "trainer.epochs=2"]) == 0  # as a shell passes "resume=$RUN"
    assert main(["train", f'resume="{run}"', "trainer.epochs=3"]) == 0  # quoted the way Hydra's syntax wants
    assert read_status(run)["steps"] == 12
    capsys.readouterr()
    assert main(["train", f"resume={run}"]) == 0
    hint = capsys.readouterr().out.split("to train it longer: ")[1].split(" trainer.steps")[0]
    assert shlex.split(hint) == ["resexp", "train", f"resume={run}"]  # pastes into a shell as it is


def test_ctrl_c_in_a_sweep_says_how_to_finish_the_sweep(tmp_path, monkeypatch, capsys):
    from contextlib import nullcontext
    from resexp.train import job

    class CtrlC:  # stands in for Ctrl-C pressed during the sweep's first job
        signum = 2

        def __bool__(self):
            return True

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(job, "StopRequest", lambda: nullcontext(CtrlC()))
    with pytest.raises(SystemExit) as stopped:
        main(["train", "-m", *TINY, "depth=8,14", "hydra.sweep.dir=sweep"])
    assert stopped.value.code == 130
    out = capsys.readouterr().out
    assert f"train resume={tmp_path}/sweep/0_resnet8-A" in out
    assert "or finish the whole sweep: run its command again with hydra.sweep.dir=sweep" in out
    assert not (tmp_path / "sweep/1_resnet14-A").exists()


def test_report_and_status_agree_where_a_killed_run_got_to(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path, "sweep/0_run", "trainer.epochs=2")
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines()[0] + "\n")  # step 4
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": _dead_pid(), "step": 0,
                                                 "total_steps": 8}))
    capsys.readouterr()
    assert main(["status", str(tmp_path / "sweep")]) == 0
    assert "4/8" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "sweep")]) == 0
    assert f"{run}: killed (at step 4 of 8)" in capsys.readouterr().out
