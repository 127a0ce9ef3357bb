"""A run's record: TensorBoard scalars and one metrics row per evaluation (metrics.jsonl), and the
per-layer gradient-norm profile as one picture per log step."""
import json
import math
import re
import time
from pathlib import Path

from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from ..errors import UserError

METRICS_FILE = "metrics.jsonl"


class RunLogger:
    """Appends to a run's record. A run resumed at `resume_step` first drops what was logged after
    that step (it will be logged again), so TensorBoard and metrics.jsonl show one continuous run."""

    def __init__(self, run_dir: Path, resume_step: int = 0, kept: list | None = None):
        """`kept`: the metrics rows up to `resume_step` (read_metrics, read before the run started); a run
        restarted in a directory an earlier attempt logged into (killed before its first checkpoint)
        drops all of that attempt's record, as a resumed run drops what came after its checkpoint."""
        used = resume_step or (run_dir / METRICS_FILE).exists() or any(run_dir.glob("events.out.tfevents.*"))
        if used:
            _wait_for_a_later_second(run_dir)
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=resume_step + 1 if used else None)
        if used:
            kept = kept if kept is not None else [row for row in read_metrics(run_dir) if row["step"] <= resume_step]
            (run_dir / METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in kept))
        self.metrics = open(run_dir / METRICS_FILE, "a")
        self.profile = None  # the gradient-profile figure, made at its first use and redrawn after

    def gradient_profile(self, step: int, tags: list[str], norms, every) -> None:
        """Every `every` steps (None: never), the per-layer gradient norms as one image (`grad_norm/profile`:
        norm vs layer index, log scale; TensorBoard's step slider shows it evolve), beside the scalars.
        The first call also writes a custom-scalars chart per stage (top-level module) of the net."""
        if not every or step % every:
            return
        if self.profile is None:
            self.profile = GradientProfile(tags)
            self.writer.add_custom_scalars(stage_layout(tags))
        self.writer.add_figure(PROFILE_TAG, self.profile.draw(step, list(norms)), step, close=False)

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


def stage_layout(tags: list[str]) -> dict:
    """Custom scalars: one chart per stage (conv1, stage1, ..., fc), overlaying its layers' gradient norms."""
    stages = dict.fromkeys(re.sub(r"^grad_norm/\d+_", "", t).split(".")[0] for t in tags)
    return {"gradient norm per stage": {s: ["Multiline", [rf"^grad_norm/\d+_{re.escape(s)}(\.|$)"]] for s in stages}}


PROFILE_TAG = "grad_norm/profile"


class GradientProfile:
    """One small Agg figure, made once and redrawn with each step's norms (tens of milliseconds a draw)."""

    def __init__(self, tags: list[str]):
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no display needed
        from matplotlib.ticker import LogFormatter, NullLocator
        self.figure = Figure(figsize=(6, 3), dpi=80)
        self.figure.subplots_adjust(left=0.13, right=0.97, bottom=0.17, top=0.89)  # fixed: no layout pass per draw
        self.axes = self.figure.subplots()
        (self.line,) = self.axes.plot(range(len(tags)), [1.0] * len(tags), "o-", markersize=2.5, linewidth=1.2)
        self.axes.set_yscale("log")
        self.axes.yaxis.set_major_formatter(LogFormatter())  # plain 1e-02 labels: mathtext costs most of a draw
        self.axes.yaxis.set_minor_locator(NullLocator())  # minor ticks cost more than the rest of the figure
        self.axes.set_xlabel("layer index (input → output)")
        self.axes.set_ylabel("weight-gradient L2 norm")
        self.axes.grid(alpha=0.3)

    def draw(self, step: int, norms: list[float]):
        self.line.set_ydata(norms)
        shown = [v for v in norms if 0 < v < math.inf]
        if shown:  # whole decades: at least two labelled ticks, and steps compare at a glance
            low = math.floor(math.log10(min(shown)))
            self.axes.set_ylim(10.0 ** low, 10.0 ** max(low + 1, math.ceil(math.log10(max(shown)))))
        self.axes.set_title(f"per-layer gradient norm, iteration {step}")
        return self.figure


def write_sweep_layout(sweep_dir) -> None:
    """The CUSTOM SCALARS tab's layout, in an event file of the sweep directory itself."""
    with SummaryWriter(log_dir=str(sweep_dir)) as writer:
        writer.add_custom_scalars(SWEEP_LAYOUT)


def _wait_for_a_later_second(run_dir: Path) -> None:
    """TensorBoard reads a run's event files in name order: creation second, host, pid, then a per-process
    counter that sorts 10 before 9. A resumed run's file must come after the old ones, so one resumed
    within the second of the newest (a test, not a person) waits for the next second."""
    seconds = [int(p.name.split(".")[3]) for p in Path(run_dir).glob("events.out.tfevents.*")]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


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
    """The run's metrics rows. A last line without its newline is a row cut by a kill mid-write: left out
    (a resumed run writes it again). Any other line that is not a row is one line naming the file."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path} cannot be read ({type(e).__name__}); move it away to go on without it") from None
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            if number == len(lines):  # the cut last line
                break
            raise UserError(f"{path} line {number} is not a metrics row; fix or move the file away")
        rows.append(row)
    return rows
