"""Scalars read back from a run's TensorBoard event file with TensorBoard's own reader."""
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def grad_norm_series(run_dir: Path) -> dict[int, list[float]]:
    """{step: [gradient norm of layer 0, 1, ...]} from the `weight_grad_norm/NNN_<layer>` tags (`grad_norm/`
    in runs logged before that name), at the steps where every layer was logged."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    tags = sorted(t for t in events.Tags().get("scalars", []) if t.startswith(("weight_grad_norm/", "grad_norm/")))
    by_step = {}
    for index, tag in enumerate(tags):  # NNN is zero-padded, so sorted tags are in layer order
        for event in events.Scalars(tag):
            by_step.setdefault(event.step, {})[index] = event.value
    return {step: [values[i] for i in range(len(tags))] for step, values in by_step.items()
            if len(values) == len(tags)}
