"""resexp.run and run_sweep: `resexp train` from Python, with the command's checks and run directories."""
import json
import sys

import pytest

import resexp
from resexp.errors import UserError
from tests.conftest import TINY


def test_run_trains_as_the_command_and_returns_its_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = list(sys.argv)
    result = resexp.run([*TINY, "model=plain"])
    assert sys.argv == argv  # the notebook's own argv is left alone
    run_dir = result.pop("run_dir")
    assert run_dir.parent.parent == tmp_path / "runs" and "_plain8_train_size=256_" in run_dir.name  # named as the command names it
    assert result.pop("exit_code") == 0
    assert result == json.loads((run_dir / "status.json").read_text())
    assert (run_dir / "overrides.yaml").exists() and result["status"] == "finished"
    again = resexp.run(" ".join([*TINY, "model=plain", f"hydra.run.dir='{run_dir}'"]))  # one string works too
    assert again["run_dir"] == run_dir and again["steps"] == result["steps"]  # finished: read back, left as it is


def test_bad_input_raises_the_commands_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^depth=21 is not of the form 6n\+2"):
        resexp.run([*TINY, "depth=21"])
    with pytest.raises(UserError, match="add -m to run a multirun sweep"):
        resexp.run([*TINY, "depth=8,14"])
    with pytest.raises(UserError, match="give overrides only"):
        resexp.run(["-m", *TINY])
    assert not (tmp_path / "runs").exists()


def test_run_sweep_returns_the_sweeps_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = resexp.run_sweep([*TINY, "model=plain,resnet"])
    assert list(runs["run"]) == ["0_plain8", "1_resnet8-A"] and set(runs["status"]) == {"finished"}
    sweep = [p for p in (tmp_path / "runs/multirun").iterdir()]
    assert len(sweep) == 1 and {p.name for p in sweep[0].iterdir() if p.is_dir()} == {"0_plain8", "1_resnet8-A"}
