"""`+debug=smoke`: any model in seconds, on a small slice of the embedded dataset, every log path taken."""
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resexp.config import validate
from resexp.track.logger import read_metrics
from resexp.train.loop import train


def test_smoke_switch_trains_a_few_steps_on_tiny_data(compose_cfg, tmp_path):
    cfg = compose_cfg("+debug=smoke", "model=plain", "depth=14", "device=cpu",
                      "trainer.precision=fp32", tiny=False)
    validate(cfg)
    assert cfg.dataset.name == "synthetic" and cfg.dataset.train_size == 256 and cfg.trainer.steps == 6
    result = train(cfg, tmp_path)
    assert result["steps"] == 6
    assert [row["step"] for row in read_metrics(tmp_path)] == [3, 6]  # two evaluations
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0}).Reload()
    assert [e.step for e in events.Scalars("train/error")] == [2, 3, 4, 6]  # log points and evaluations
    assert [e.step for e in events.Images("weight_grad/profile")] == [2, 4, 6]
    assert list((tmp_path / "checkpoints").glob("*.pt"))
