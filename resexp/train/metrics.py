"""The numbers a run logs from its training steps, each one named entry: its TensorBoard tag, its key in
metrics.jsonl's rows, and how it is computed from a log read (loop.LogRead) and the step sums of the
window it covers (since the last log point for the curves, since the last evaluation for the rows).

Adding a metric is one entry here: `Metric("train/grad_norm_ratio", "grad_norm_ratio",
lambda sums, read: read.norms[0] / read.norms[-1])` is then a TensorBoard curve and a key of every
metrics.jsonl row (tests/test_metrics.py adds exactly this one).
"""
from typing import Callable, NamedTuple


class Metric(NamedTuple):
    tag: str          # TensorBoard's scalar tag
    row: str | None   # its key in metrics.jsonl's rows; None: a curve only
    value: Callable   # (step.Sums of the window, loop.LogRead) -> float


TRAINING = [
    Metric("train/loss", "train_loss", lambda sums, read: sums.mean_loss),
    Metric("train/error", "train_error", lambda sums, read: sums.error),   # %
    Metric("train/lr", None, lambda sums, read: read.lr),  # the lr of the step read (a row's `lr` is the next's)
]


def curves(read) -> dict:
    """{tag: value} at a log point, over the steps since the last one."""
    return {m.tag: m.value(read.totals, read) for m in TRAINING}


def row(read) -> dict:
    """{row key: value} at an evaluation, over the steps since the last one."""
    return {m.row: m.value(read.eval_totals, read) for m in TRAINING if m.row}
