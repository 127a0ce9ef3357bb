"""A run's record: TensorBoard scalars and one metrics row per evaluation (metrics.jsonl), and the
per-layer gradient-norm profile as one picture per log step.

Tags are named for TensorBoard's TIME SERIES tab, which sorts groups by name: `test/*` and `train/*`
(the curves, lr and speed) come first, `val/*` next, then the profile image `weight_grad/profile`, and
the per-layer `weight_grad_norm/NNN_<layer>` scalars last, for tools; people see those as per-stage
charts (CUSTOM SCALARS) and as the profile image."""
import json
import math
import re
import time
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.hparams.summary_v2 import HParam, Metric, hparams_config_pb
from torch.utils.tensorboard.summary import hparams

from ..errors import UserError
from ..tree import flatten

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
        self.run_dir = Path(run_dir)
        self.profile = None  # the gradient-profile figure, made at its first use and redrawn after
        self.layout_written = False

    def log_point(self, step: int, values: dict, tags: list[str], norms, profile_every) -> None:
        """A log step's scalars (`values`: the training curves since the last log point, lr, speed), the
        per-layer gradient norms, and every `profile_every` steps (None: never) the same norms as one image
        (`weight_grad/profile`: norm vs layer index, log scale; TensorBoard's step slider shows it evolve).
        The first call writes the run's custom-scalars layout: the curves, and one chart per stage."""
        norms = list(norms)
        if not self.layout_written:  # TensorBoard merges the layouts of all runs, so a sweep needs no run of its own
            self.writer.add_custom_scalars({**CURVES_LAYOUT, **stage_layout(tags)})
            self.layout_written = True
        self.scalars(step, {**values, **dict(zip(tags, norms))})
        if profile_every and step % profile_every == 0:
            self.profile = self.profile or GradientProfile(tags)
            self.writer.add_figure(PROFILE_TAG, self.profile.draw(step, norms), step, close=False)

    def scalars(self, step: int, values: dict) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def evaluation(self, row: dict) -> None:
        """One metrics row (errors in percent); its test (and val) numbers also as TensorBoard scalars
        (the training curves come from every log point)."""
        self.scalars(row["step"], {"test/error": row["test_error"], "test/loss": row["test_loss"]})
        if "val_error" in row:  # only when dataset.val_size holds images out of the training split
            self.scalars(row["step"], {"val/error": row["val_error"], "val/loss": row["val_loss"]})
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()

    def hparams(self, config, columns=()) -> None:
        """What identifies the run (TensorBoard's HPARAMS tab), in its own event file: model, depth,
        the options its label shows, dataset, seed and every key overridden on the command line (a sweep's
        swept keys among them), typed. HPARAMS takes its columns from the declaration of whichever run it reads
        first, so every run declares the same ones: identifying(), then `columns` (config.hparam_columns:
        every key any run can be told apart by), then any key only this run has (`+key=...`). Its metrics
        are the last points of the curves already logged, so no single-point tag joins TIME SERIES.
        (`SummaryWriter.add_hparams` would write a stray second run.)"""
        config = config if isinstance(config, dict) else OmegaConf.to_container(config, resolve=True)
        flat = flatten(config)
        metrics = [*HPARAMS_METRICS, *(["val/error"] if flat.get("dataset.val_size") else [])]
        values = identifying_hparams(flat, _overrides(self.run_dir))
        declared = dict.fromkeys([*identifying(), *columns, *values])
        experiment = hparams_config_pb([HParam(name) for name in declared], [Metric(tag) for tag in metrics])
        _mark_first(experiment, set(values))
        _, session_start, session_end = hparams(values, dict.fromkeys(metrics))
        for summary in (experiment, session_start, session_end):
            self.writer.file_writer.add_summary(summary)

    def close(self) -> None:
        self.writer.close()
        self.metrics.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


HPARAMS_METRICS = ("test/error", "train/error")


def _mark_first(experiment, keys: set) -> None:
    """TensorBoard lists HPARAMS' columns with those declared `differs` first, each part by name, and
    ticks the first five: declare so the keys this run has a value for (model.name, depth, its label's
    options, dataset.name, seed, what was overridden), so the columns that open ticked are those that tell
    a sweep's runs apart, not the first five of the alphabet (`dataset.augment.*`)."""
    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in keys
    value.metadata.plugin_data.content = data.SerializeToString()
def identifying() -> tuple[str, ...]:
    """Always in HPARAMS, first: model, depth, every option a family's label shows (models.Family.shown:
    model.shortcut, model.widen, ...), dataset, seed; then every overridden key. The rest of the config is
    in the run's config.yaml."""
    from ..models import FAMILIES
    shown = dict.fromkeys(f"model.{key}" for family in FAMILIES.values() for key in family.shown())
    return ("model.name", "depth", *shown, "dataset.name", "seed")


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / "overrides.yaml"
    return (yaml.safe_load(path.read_text()) or []) if path.exists() else []


def identifying_hparams(flat: dict, overrides: list[str]) -> dict:
    """{key: typed value}: identifying(), then each overridden key as the composed config holds it (a config
    group such as `model=plain` by its name; `+experiment=X` as experiment: X). None becomes 'null'."""
    values = {k: flat[k] for k in identifying() if k in flat}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        key = f"{key}.name" if f"{key}.name" in flat else key
        values.setdefault(key, flat.get(key, value))
    return {k: v if isinstance(v, (bool, int, float, str)) else "null" if v is None else str(v)
            for k, v in values.items()}


# Custom-scalars charts, written into every run: TensorBoard merges the runs' layouts, and a chart picks
# tags by regex in every run, so one chart overlays all jobs of a sweep (plain and residual, every depth)
# as the paper's Fig. 6 does per panel. A layout cannot pick runs: TensorBoard's run filter (e.g. `plain`)
# narrows a chart to one family.
CURVES_LAYOUT = {"error %": {"train and test error (Fig. 6)": ["Multiline", [r"^(train|test)/error$"]],
                             "train/error": ["Multiline", [r"^train/error$"]],
                             "test/error": ["Multiline", [r"^test/error$"]]},
                 "loss": {"train/loss": ["Multiline", [r"^train/loss$"]],
                          "test/loss": ["Multiline", [r"^test/loss$"]]}}


def stage_layout(tags: list[str]) -> dict:
    """Custom scalars: one chart per stage (conv1, stage1, ..., fc), overlaying its layers' gradient norms."""
    stages = dict.fromkeys(re.sub(r"^weight_grad_norm/\d+_", "", t).split(".")[0] for t in tags)
    return {"gradient norm per stage": {s: ["Multiline", [rf"^weight_grad_norm/\d+_{re.escape(s)}(\.|$)"]]
                                        for s in stages}}


PROFILE_TAG = "weight_grad/profile"


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
        self.decades = None  # (lowest, highest) power of ten shown so far

    def draw(self, step: int, norms: list[float]):
        """The y range is whole decades, set by the first frame and only ever widened, so dragging
        TensorBoard's step slider shows the profile move, not the axis."""
        self.line.set_ydata(norms)
        shown = [v for v in norms if 0 < v < math.inf]
        if shown:  # whole decades: at least two labelled ticks, and steps compare at a glance
            low = math.floor(math.log10(min(shown)))
            high = max(low + 1, math.ceil(math.log10(max(shown))))
            self.decades = (min(low, self.decades[0]), max(high, self.decades[1])) if self.decades else (low, high)
            self.axes.set_ylim(10.0 ** self.decades[0], 10.0 ** self.decades[1])
        self.axes.set_title(f"per-layer gradient norm, iteration {step}")
        return self.figure


def _wait_for_a_later_second(run_dir: Path) -> None:
    """TensorBoard reads a run's event files in name order: creation second, host, pid, then a per-process
    counter that sorts 10 before 9. A resumed run's file must come after the old ones, so one resumed
    within the second of the newest (a test, not a person) waits for the next second."""
    seconds = [int(p.name.split(".")[3]) for p in Path(run_dir).glob("events.out.tfevents.*")]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


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
