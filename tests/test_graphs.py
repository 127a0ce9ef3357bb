"""The graph path without a GPU: trainer.cuda_graph=emulate records the step's aten ops at capture and
replays only them, as a CUDA graph does, so the real training loop is checked under graph semantics:
frozen Python values, replays on the same tensors, random draws anew, no host reads inside the capture."""
import json

import pytest
import torch

from resexp.errors import UserError
from resexp.train.graphs import EmulatedGraphs, GraphedStep
from resexp.train.loop import build_training, train
from tests.test_reliability import rows
from tests.test_speed import same_steps

GRAPH = ["trainer.cuda_graph=emulate"]
# crop and flip (random draws inside the graph), two lr drops after the capture, 120 steps
LONG = ["trainer.epochs=30", "trainer.eval_every=10", "dataset.augment.flip=true", "dataset.augment.crop_padding=2",
        "schedule.milestones=[0.3,0.6]"]


def params(tr):
    return [p.detach().clone() for p in tr.model.parameters()]


@pytest.mark.parametrize("overrides", [[], ["optimizer=adam", "optimizer.lr=0.01"],
                                       ["warmup.lr=0.01", "warmup.until_error=80", "warmup.window=4"]],
                         ids=["sgd", "adam", "warmup"])
def test_the_graphed_run_equals_the_eager_run(compose_cfg, tmp_path, overrides):
    """The whole loop, evaluations, warm-up and schedule included: every metric row, to the last bit."""
    eager = train(compose_cfg(*LONG, *overrides), tmp_path / "eager")
    graphed = train(compose_cfg(*LONG, *overrides, *GRAPH), tmp_path / "graph")
    assert graphed["modes"]["cuda_graph"] == "emulated: captured" and eager["modes"]["cuda_graph"] == "off"
    assert rows(tmp_path / "graph") == rows(tmp_path / "eager") and len(rows(tmp_path / "eager")) == 12
    assert graphed.get("warmup_ended_at") == eager.get("warmup_ended_at")
    if overrides and overrides[0].startswith("warmup"):
        assert eager["warmup_ended_at"] > 4  # the warm-up ended inside the graph's replays


def test_a_schedule_that_rebinds_the_lr_tensor_is_caught(compose_cfg, monkeypatch):
    """A graph reads the lr tensor it captured: a schedule that puts a new tensor in the param group
    (instead of filling the old one) trains on with the old lr under a graph, and the emulation sees it."""
    cfg = ["trainer.epochs=10", "schedule.milestones=[0.3]"]
    eager, graphed = build_training(compose_cfg(*cfg)), build_training(compose_cfg(*cfg, *GRAPH))
    for tr in (eager, graphed):
        step = tr.schedule.step

        def rebinding_step(step=step, tr=tr):
            step()
            for group in tr.optimizer.param_groups:
                group["lr"] = group["lr"].clone()
        monkeypatch.setattr(tr.schedule, "step", rebinding_step)
    same_steps((eager, graphed), 20)  # the lr drops 10x at step 12
    assert graphed.run_step.state == "captured"
    assert not all(torch.equal(a, b) for a, b in zip(params(eager), params(graphed)))


def test_the_fixed_schedule_fills_the_lr_tensor_the_graph_reads(compose_cfg):
    cfg = ["trainer.epochs=10", "schedule.milestones=[0.3]"]
    eager, graphed = build_training(compose_cfg(*cfg)), build_training(compose_cfg(*cfg, *GRAPH))
    lr = graphed.optimizer.param_groups[0]["lr"]
    same_steps((eager, graphed), 20)
    assert graphed.optimizer.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.01)
    assert all(torch.equal(a, b) for a, b in zip(params(eager), params(graphed)))


def test_a_capture_changes_nothing_and_draws_no_random_numbers(compose_cfg):
    tr = build_training(compose_cfg(*GRAPH, "dataset.augment.flip=true"))
    for done in (1, 2, 3):
        tr.advance(done)
    before, rng = params(tr), torch.get_rng_state()
    sums = tr.step.since_eval.clone()
    graph = EmulatedGraphs().graph()
    tr.optimizer.zero_grad(set_to_none=True)
    graph.record(tr.step)
    assert all(torch.equal(a, b) for a, b in zip(before, params(tr)))
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(tr.step.since_eval, sums)
    graph.replay()
    assert not all(torch.equal(a, b) for a, b in zip(before, params(tr)))  # the replay trains


class ReadsTheLoss:
    """A step that reads its loss on the host: legal eagerly, refused inside a CUDA graph capture."""

    def __init__(self, step):
        self.step, self.optimizer, self.reads = step, step.optimizer, 0

    def __call__(self):
        self.step()
        self.reads += 1
        float(self.step.last[0])


@pytest.mark.parametrize("fallback", [False, True])
def test_a_host_read_inside_the_capture_fails_as_on_cuda(compose_cfg, capsys, fallback):
    eager, graphed = build_training(compose_cfg()), build_training(compose_cfg(*GRAPH))
    graphed.run_step = runner = GraphedStep(ReadsTheLoss(graphed.step), EmulatedGraphs(), eager_steps=2,
                                            fallback=fallback)
    if not fallback:
        with pytest.raises(UserError, match=r"CUDA graph capture failed \(RuntimeError: Tensor.__float__ "
                                            r"reads a tensor back to the host.*trainer.cuda_graph=false"):
            same_steps([graphed], 4)
        return
    same_steps((eager, graphed), 4)
    assert runner.state.startswith("fell back: RuntimeError: Tensor.__float__ reads") and runner.eager
    assert "CUDA graph capture failed" in capsys.readouterr().err
    assert all(torch.equal(a, b) for a, b in zip(params(eager), params(graphed)))  # the failed capture left no trace


def test_status_records_the_modes_the_run_trained_in(tmp_path, resexp_cli):
    from tests.conftest import TINY
    result = resexp_cli("train", *TINY, *GRAPH, "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr[-2000:]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["modes"] == {"device": "cpu", "precision": "fp32", "channels_last": True,
                               "cuda_graph": "emulated: captured", "compile": False}
    assert "training on cpu: fp32, channels_last, emulated CUDA graph\n" in result.stdout


@pytest.mark.parametrize("override,expected", [
    ("device=cuda", "device=cuda but no CUDA GPU"),
    ("device=auto", "trainer.cuda_graph=emulate replays the step as a CUDA graph would, on the CPU only"),
    ("trainer.compile=true", "trainer.cuda_graph=emulate records torch's own operations"),
])
def test_emulate_is_refused_where_it_cannot_run(tmp_path, monkeypatch, capsys, override, expected):
    from resexp.cli import main
    if override == "device=cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "device=cpu", *GRAPH, override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_bench_never_times_the_capture(compose_cfg):
    """Its untimed warm-up lasts until the graph is captured, whatever --warmup-steps says."""
    from resexp.bench import _Timed
    timed = _Timed(compose_cfg(*GRAPH, "trainer.steps=100"))
    timed.warm_up(1)
    assert timed.tr.graph_state() == "captured" and timed.timed == 1 and timed.done == 5


def test_a_resumed_warm_up_keeps_its_sums_on_the_run_device():
    """Restored sums live where the step's counts do (a CUDA run once added CUDA counts to CPU sums)."""
    from resexp.train.warmup import WarmUp
    warmup = WarmUp(0.1, 80, 20, True, device="meta")
    warmup.load_state_dict({"active": True, "ended_at": None, "sums": [30.0, 64.0], "steps": 1})
    assert warmup._sums.device.type == "meta"


class Breaks:
    """The step followed by one operation a real CUDA graph capture refuses (each seen refused on an H200:
    docs/speed.md)."""

    def __init__(self, step, code):
        self.step, self.optimizer, self.code = step, step.optimizer, code

    def __call__(self):
        self.step()
        loss, generator = self.step.last, torch.Generator().manual_seed(0)  # noqa: F841  read by the code
        eval(self.code)


BREAKERS = {"item": "loss[0].item()", "tolist": "loss.tolist()", "cpu": "loss.cpu()", "float": "float(loss[0])",
            "if": "bool(loss[0] > 1)", "mask": "loss[loss > 1]", "nonzero": "loss.nonzero()",
            "bincount": "torch.bincount(loss.long())", "unique_consecutive": "torch.unique_consecutive(loss)",
            "repeat_interleave": "torch.repeat_interleave(loss.long())", "torch.tensor": "loss + torch.tensor(0.5)",
            "generator": "torch.rand(3, generator=generator)"}


@pytest.mark.parametrize("code", BREAKERS.values(), ids=BREAKERS.keys())
def test_the_emulation_refuses_what_a_real_capture_refuses(compose_cfg, code):
    tr = build_training(compose_cfg(*GRAPH))
    tr.run_step = GraphedStep(Breaks(tr.step, code), EmulatedGraphs(), eager_steps=1)
    with pytest.raises(UserError, match="CUDA graph capture failed .*(host|generator)"):
        same_steps([tr], 3)


def test_what_a_real_capture_accepts_the_emulation_accepts_too(compose_cfg):
    """repeat_interleave with its output size, Python numbers as op arguments, the default generator."""
    tr = build_training(compose_cfg(*GRAPH))
    code = "torch.repeat_interleave(torch.ones_like(loss).long(), output_size=3) * 2.0 + torch.rand(3)"
    tr.run_step = GraphedStep(Breaks(tr.step, code), EmulatedGraphs(), eager_steps=1)
    same_steps([tr], 3)
    assert tr.graph_state() == "captured"


def test_a_run_that_diverges_after_the_capture_names_the_first_bad_step(compose_cfg, tmp_path):
    """The lr jumps 1000x at step 20, long after the capture (step 4): the graphed run stops at the same
    step as the eager one, so the step counter lives in the graph, not in Python."""
    from resexp.train.loop import Diverged
    blow_up = ["trainer.epochs=10", "schedule.gamma=1000", "schedule.milestones=[0.5]"]
    stopped = []
    for graph in ([], GRAPH):
        with pytest.raises(Diverged) as e:
            train(compose_cfg(*blow_up, *graph), tmp_path / str(len(stopped)))
        stopped.append(e.value.step)
    assert stopped[0] == stopped[1] > 20


@pytest.mark.parametrize("overrides", [["trainer.precision=bf16"],
                                       ["trainer.precision=bf16", "optimizer=adam", "optimizer.lr=0.01"]],
                         ids=["sgd-bf16", "adam-bf16"])
def test_bf16_under_the_graph_equals_bf16_eager(compose_cfg, overrides):
    cfg = ["trainer.epochs=10", "dataset.augment.flip=true", "dataset.augment.crop_padding=2",
           "schedule.milestones=[0.3,0.6]", *overrides]
    eager, graphed = build_training(compose_cfg(*cfg)), build_training(compose_cfg(*cfg, *GRAPH))
    same_steps((eager, graphed), 40)
    assert graphed.graph_state() == "captured" and graphed.modes["precision"] == "bf16"
    assert all(torch.equal(a, b) for a, b in zip(params(eager), params(graphed)))


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_the_lr_lives_on_the_parameters_device(compose_cfg, monkeypatch, optimizer):
    """CUDA's fused SGD and Adam read a CPU lr tensor once, as a number, when the step is captured: the
    schedule's drops would never reach the graph. The meta device stands in for a GPU here."""
    from resexp.train.optim import make_optimizer
    given = {}
    monkeypatch.setattr(torch.optim, optimizer, lambda params, lr, **options: given.update(lr=lr))
    make_optimizer(compose_cfg(f"optimizer={optimizer.lower()}").optimizer, [], torch.device("meta"), graphed=True)
    assert isinstance(given["lr"], torch.Tensor) and given["lr"].device.type == "meta"
