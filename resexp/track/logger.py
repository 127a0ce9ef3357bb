"""A run's record: TensorBoard scalars and one metrics row per evaluation (metrics.jsonl)."""
import json
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

METRICS_FILE = "metrics.jsonl"


class RunLogger:
    """Appends to a run's record. A run resumed at `resume_step` first drops what was logged after
    that step (it will be logged again), so TensorBoard and metrics.jsonl show one continuous run."""

    def __init__(self, run_dir: Path, resume_step: int = 0):
        purge = resume_step + 1 if resume_step else None
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge)
        if resume_step:
            kept = [row for row in read_metrics(run_dir) if row["step"] <= resume_step]
            (run_dir / METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in kept))
        self.metrics = open(run_dir / METRICS_FILE, "a")

    def scalars(self, step: int, values: dict) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def evaluation(self, row: dict) -> None:
        """One metrics row (errors in percent), also written as TensorBoard scalars."""
        self.scalars(row["step"], {"train/error": row["train_error"], "train/loss": row["train_loss"],
                                   "test/error": row["test_error"], "test/loss": row["test_loss"]})
        if "val_error" in row:  # only when dataset.val_size holds images out of the training split
            self.scalars(row["step"], {"val/error": row["val_error"], "val/loss": row["val_loss"]})
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()

    def close(self) -> None:
        self.writer.close()
        self.metrics.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
