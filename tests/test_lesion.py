"""`resexp lesion`: one row per block, the intact net's error is the run's own final test error, deleted
blocks are their shortcut (residual) or the identity (plain, same shape), and clear errors."""
import json

import torch
from PIL import Image

from resexp import build_model
from resexp.cli import main
from resexp.explain.lesion import deleted, find_blocks
from tests.conftest import refused


def test_one_row_per_block_and_the_intact_error_is_the_runs_own(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["lesion", str(tiny_runs / "resnet"), str(tiny_runs / "plain"), "--draws", "2", "--json", "--out", "l"]) == 0
    resnet, plain = json.loads(capsys.readouterr().out)
    for r, name in ((resnet, "resnet"), (plain, "plain")):
        status = json.loads((tiny_runs / name / "status.json").read_text())
        assert r["intact_error"] == status["final_test_error"]
        # depth 8: three stages of one block each
        assert [b["name"] for b in r["blocks"]] == ["stage1.0", "stage2.0", "stage3.0"]
        assert all(0 <= b["error"] <= 100 for b in r["blocks"] if b["error"] is not None)
    assert [b["deleted_as"] for b in resnet["blocks"]] == ["shortcut"] * 3
    # The plain net's stage1 block keeps its shape (identity); the others halve the map and double the width.
    assert [b["deleted_as"] for b in plain["blocks"]] == ["identity", "kept (changes shape)", "kept (changes shape)"]
    assert plain["blocks"][1]["error"] is None
    assert [row["k"] for row in resnet["random"]] == [1, 2, 3] and [row["k"] for row in plain["random"]] == [1]
    assert all(len(row["errors"]) == 2 for row in resnet["random"])
    last = resnet["random"][-1]  # k = all blocks: every draw deletes the same set
    assert last["min"] == last["max"]
    assert json.loads((tmp_path / "l/lesion.json").read_text()) == [resnet, plain]
    assert Image.open(tmp_path / "l/lesion.png").size == (1800, 675)


def test_table_and_refusals(tiny_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    resnet = str(tiny_runs / "resnet")
    assert main(["lesion", resnet, "--max-k", "1", "--out", "l"]) == 0
    out = capsys.readouterr().out
    assert "Test error (%) with one block deleted" in out and "stage3.0" in out
    assert max(map(len, out.splitlines())) <= 80
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/config.yaml").write_text((tiny_runs / "resnet/config.yaml").read_text())
    for args, message in ((["empty"], "error: empty has no checkpoint (checkpoints/step_*.pt)"),
                          (["nowhere"], "error: nowhere is not a run directory (no config.yaml)"),
                          ([resnet, "--out", "l"], "--out l already holds lesion.png, lesion.json"),
                          ([resnet, "--draws", "0"], "--draws 0 is invalid"),
                          ([], "the following arguments are required: RUN")):
        assert message in refused(capsys, "lesion", *args)


def test_deleting_a_block_is_its_shortcut_and_is_undone():
    torch.manual_seed(0)
    model = build_model("resnet", 8, width=4).eval()
    x = torch.randn(2, 3, 8, 8)
    before = model(x)
    blocks = find_blocks(model, x)
    with deleted([blocks[0]]):
        assert model.stage1[0] is blocks[0].module.shortcut
        lesioned = model(x)
    stem = model.act1(model.bn1(model.conv1(x)))  # stage1's shortcut is the identity
    assert torch.equal(lesioned, model.fc(model.pool(model.stage3(model.stage2(stem))).flatten(1)))
    assert torch.equal(model(x), before)
