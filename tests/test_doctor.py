"""`resexp doctor`: the GPU self-check, run here on the CPU against the emulated graph."""
import json

import pytest

from resexp.cli import main
from resexp.train.graphs import EmulatedGraphs


@pytest.mark.slow  # ~10 s: every check, each training a few steps
def test_doctor_runs_the_checks_and_writes_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "doctor.json"
    checks = "graph-vs-eager,auto-sgd,auto-adam,compile-in-graph,deterministic,resume,ddp-1-process"
    assert main(["doctor", "--device", "cpu", "--checks", checks, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    results = {r["check"]: r for r in report["results"]}
    assert list(results) == checks.split(",")
    assert {name: r["result"] for name, r in results.items()} == {
        **{name: "pass" for name in checks.split(",")}, "compile-in-graph": "skip"}
    compared = [r["detail"] for r in report["results"] if r["check"] == "graph-vs-eager"]
    assert compared == [f"{o} {p}: 30 steps, 2 lr drops (lr now {lr}): weights within 0.0e+00 of eager"
                        for o, lr in (("sgd", "0.001"), ("adam", "1e-05")) for p in ("fp32", "bf16")] + [
        "graph emulated on the CPU"]
    assert results["ddp-1-process"]["detail"] == "DDP step captured on cpu (gloo)"
    assert "no CUDA: graphs emulated" in report["machine"]
    text = capsys.readouterr().out
    assert "resexp doctor" in text and max(map(len, text.splitlines())) <= 80


def test_a_failing_check_is_reported_and_exits_1(tmp_path, monkeypatch):
    def broken(self, graph, step):
        raise RuntimeError("operation not permitted when stream is capturing")
    monkeypatch.setattr(EmulatedGraphs, "capture", broken)
    out = tmp_path / "doctor.json"
    assert main(["doctor", "--device", "cpu", "--checks", "graph-vs-eager,auto-sgd", "--json", str(out)]) == 1
    results = json.loads(out.read_text())["results"]
    assert [r["result"] for r in results] == ["FAIL", "FAIL"]
    assert results[0]["detail"].startswith("UserError: CUDA graph capture failed (RuntimeError: operation not "
                                           "permitted when stream is capturing)")


@pytest.mark.parametrize("args,expected", [
    (["--checks", "graph,resume"], "--checks: graph unknown; choose from: graph-vs-eager"),
    (["--device", "cuda"], "--device cuda but no CUDA GPU is visible"),
])
def test_bad_arguments_are_one_line(capsys, args, expected):
    import torch
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert main(["doctor", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_json_goes_into_new_folders_and_an_unwritable_place_is_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "new" / "sub" / "doctor.json"
    assert main(["doctor", "--device", "cpu", "--checks", "auto-sgd", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"][0]["result"] == "pass"

    def refuse(path, mode=0o777, parents=False, exist_ok=False):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr("pathlib.Path.mkdir", refuse)
    capsys.readouterr()
    elsewhere = tmp_path / "other" / "doctor.json"
    assert main(["doctor", "--device", "cpu", "--checks", "auto-sgd", "--json", str(elsewhere)]) == 2
    assert capsys.readouterr().err.endswith(f"{elsewhere.parent} cannot be created: Read-only file system\n")


def test_an_existing_json_file_is_left_alone(tmp_path, capsys):
    out = tmp_path / "doctor.json"
    out.write_text("mine")
    assert main(["doctor", "--device", "cpu", "--json", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "mine"
