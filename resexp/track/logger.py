"""A run's record: TensorBoard scalars and one metrics row per evaluation (metrics.jsonl)."""
import json
from pathlib import Path

from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

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

    def hparams(self, config, metrics: dict, step: int) -> None:
        """The run's flat config and final metrics in its own event file (TensorBoard's HPARAMS tab).

        `SummaryWriter.add_hparams` would write them to a new subdirectory, a stray second run."""
        config = config if isinstance(config, dict) else OmegaConf.to_container(config, resolve=True)
        values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flatten(config).items()}
        for summary in hparams(values, metrics):
            self.writer.file_writer.add_summary(summary)
        self.scalars(step, metrics)

    def close(self) -> None:
        self.writer.close()
        self.metrics.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# Custom-scalars charts for a sweep. Charts pick tags by regex in every run below the sweep directory,
# so one chart overlays all jobs (plain and residual, every depth) as the paper's Fig. 6 does per panel.
# A layout cannot pick runs: TensorBoard's run filter (e.g. `plain`) narrows a chart to one family.
SWEEP_LAYOUT = {"error %": {"train and test error (Fig. 6)": ["Multiline", [r"^(train|test)/error$"]],
                            "train/error": ["Multiline", [r"^train/error$"]],
                            "test/error": ["Multiline", [r"^test/error$"]]},
                "loss": {"train/loss": ["Multiline", [r"^train/loss$"]],
                         "test/loss": ["Multiline", [r"^test/loss$"]]}}


def write_sweep_layout(sweep_dir) -> None:
    """The CUSTOM SCALARS tab's layout, in an event file of the sweep directory itself."""
    with SummaryWriter(log_dir=str(sweep_dir)) as writer:
        writer.add_custom_scalars(SWEEP_LAYOUT)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'model.name': 'plain', 'depth': 20, ...} from a nested config."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
