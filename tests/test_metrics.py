"""A metric is one named entry of resexp/train/metrics.py: added by CONTRIBUTING's recipe, it is logged."""
import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resexp.cli import main
from resexp.train import metrics
from tests.conftest import TINY


def test_a_new_metric_is_its_name_and_its_computation(tmp_path, monkeypatch):
    """The gradient-norm ratio of the first and the last weighted layer, as CONTRIBUTING adds it."""
    ratio = metrics.Metric("train/grad_norm_ratio", "grad_norm_ratio", lambda sums, read: read.norms[0] / read.norms[-1])
    monkeypatch.setattr(metrics, "TRAINING", [*metrics.TRAINING, ratio])  # the line a contributor adds
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "trainer.steps=4", "trainer.log_every=2", "trainer.eval_every=2",
                 "hydra.run.dir=run"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4] and all(row["grad_norm_ratio"] > 0 for row in rows)
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    curve = events.Scalars("train/grad_norm_ratio")
    assert [p.step for p in curve] == [2, 4] and all(p.value > 0 for p in curve)
    norms = events.Scalars([t for t in events.Tags()["scalars"] if t.startswith("weight_grad_norm/")][0])
    assert norms[-1].value > 0  # the norms it reads are the logged ones
