"""The paper's recipe pieces: warm-up until the training error is low, schedules in iterations or epochs."""
import json

import pytest
import torch

from resexp.config import validate
from resexp.errors import UserError
from resexp.train.optim import lr_factor, make_schedule, milestone_steps
from resexp.train.loop import train
from resexp.train.warmup import WarmUp


def test_warmup_holds_the_low_lr_until_the_error_falls_then_never_again(compose_cfg):
    cfg = compose_cfg("warmup.lr=0.01", "warmup.window=2", "warmup.min_depth=110", "depth=110").warmup
    w = WarmUp.from_config(cfg, depth=110, base_lr=0.1)
    assert w.active and w.factor() == pytest.approx(0.1)
    assert not WarmUp.from_config(cfg, depth=56, base_lr=0.1).active  # shallower than min_depth
    assert not WarmUp.from_config(compose_cfg().warmup, depth=110, base_lr=0.1).active  # warmup.lr=null
    for step, wrong in enumerate([90, 85, 82, 70], start=1):  # window means: 87.5 then 76 (< 80)
        w.observe(step, torch.tensor(float(wrong)), torch.tensor(100.0))
        assert w.active == (step < 4)
    assert w.ended_at == 4 and w.factor() == 1.0
    w.observe(5, torch.tensor(100.0), torch.tensor(100.0))
    assert not w.active  # a later bad window does not bring the warm-up back


def test_warmup_state_survives_a_round_trip_mid_window():
    w = WarmUp(0.1, until_error=80, window=2, active=True)
    w.observe(1, torch.tensor(70.0), torch.tensor(100.0))
    restored = WarmUp(0.1, until_error=80, window=2, active=True)
    restored.load_state_dict(json.loads(json.dumps(w.state_dict())))  # plain numbers: fits any checkpoint
    for x in (w, restored):
        x.observe(2, torch.tensor(70.0), torch.tensor(100.0))
    assert not w.active and not restored.active and restored.ended_at == 2


def test_milestones_in_fractions_iterations_or_epochs(compose_cfg):
    paper = compose_cfg("schedule.unit=step", "schedule.milestones=[32000,48000]").schedule
    assert milestone_steps(paper, 64000, 352) == [32000, 48000]
    assert lr_factor(paper, 31999, 64000) == 1 and lr_factor(paper, 32000, 64000) == pytest.approx(0.1)
    assert lr_factor(paper, 48000, 64000) == pytest.approx(0.01)
    assert milestone_steps(compose_cfg().schedule, 64000, 352) == [32000, 48000]  # default: fractions 0.5, 0.75
    epochs = compose_cfg("schedule.unit=epoch", "schedule.milestones=[91,136]").schedule
    assert milestone_steps(epochs, 64000, 352) == [91 * 352, 136 * 352]


def test_schedule_multiplies_in_the_warmup():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = WarmUp(0.1, until_error=80, window=1, active=True)
    cfg = __import__("omegaconf").OmegaConf.create({"name": "constant"})
    schedule = make_schedule(cfg, opt, 10, 1, w)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    w.observe(1, torch.tensor(10.0), torch.tensor(100.0))
    opt.step()
    schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


@pytest.mark.parametrize("override,message", [
    ("schedule.unit=minutes", "schedule.unit='minutes' is invalid; choose one of: fraction, step, epoch"),
    ("schedule.milestones=[0.5,1.5]", "schedule.milestones=[0.5, 1.5] is invalid with schedule.unit=fraction"),
    ("warmup.lr=-1", "warmup.lr=-1 is invalid"),
    ("warmup.until_error=0", "warmup.until_error=0 is invalid"),
    ("trainer.steps=0", "trainer.steps=0 is invalid"),
    ("dataset.val_size=-1", "dataset.val_size=-1 is invalid"),
    ("dataset.normalize=zca", "dataset.normalize='zca' is invalid; choose one of: per_channel, per_pixel"),
])
def test_recipe_keys_are_validated(override, message, compose_cfg):
    overrides = [override, "warmup.lr=0.01"] if override.startswith("warmup.until") else [override]
    with pytest.raises(UserError) as e:
        validate(compose_cfg(*overrides))
    assert message in str(e.value)


def test_iteration_budget_and_warmup_survive_a_resume(compose_cfg, tmp_path):
    """6 iterations in one go, or 3 then 3 more from the checkpoint: the same lr at every step."""
    # The warm-up's first check comes at step 4: the resumed run must carry steps 1-3's counts over.
    args = ["trainer.log_every=1", "trainer.eval_every=1", "warmup.lr=0.01", "warmup.window=4",
            "warmup.until_error=99.9", "dataset.val_size=64", "schedule=constant"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "split").mkdir()
    whole = train(compose_cfg(*args, "trainer.steps=6"), tmp_path / "whole")
    train(compose_cfg(*args, "trainer.steps=3"), tmp_path / "split")
    split = train(compose_cfg(*args, "trainer.steps=6"), tmp_path / "split")
    rows = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("whole", "split")]
    assert [r["step"] for r in rows[0]] == [1, 2, 3, 4, 5, 6]
    assert [r["lr"] for r in rows[0]] == [r["lr"] for r in rows[1]] == pytest.approx([0.01] * 3 + [0.1] * 3)
    assert whole["steps"] == split["steps"] == 6 and "final_val_error" in whole
    assert whole["warmup_ended_at"] == split["warmup_ended_at"] == 4
