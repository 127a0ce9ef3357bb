"""The training loop, `train`, read top to bottom, and what it trains with: `Training` (built from the
config by `build_training`), whose `advance` is the one per-step function every path shares."""
import math
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from omegaconf import OmegaConf

from ..config import hparam_columns
from ..data import load_dataset
from ..errors import UserError
from ..models import count_parameters, label, model_from_config, model_options
from ..paper import reference
from ..track.logger import RunLogger
from ..console import say
from ..track.logger import read_metrics
from ..track.progress import RunProgress
from ..track.responses import RESPONSE_IMAGES, write_responses
from . import distributed
from .checkpoint import RunState, resume, save
from .evaluate import evaluate
from . import cuda, metrics
from .graphs import EmulatedGraphs, GraphedStep
from .optim import make_optimizer, make_schedule
from . import speed
from .speed import pick_device, set_determinism, speed_modes
from .step import IMAGES, WRONG, Sums, TrainStep
from .warmup import WarmUp


class Diverged(Exception):
    """The loss exploded (non-finite, or above trainer.divergence_loss) or a gradient became non-finite
    at `step`; `row` holds the last finite metrics."""

    def __init__(self, step, row):
        super().__init__(f"non-finite or exploding loss or gradient at step {step}")
        self.step, self.row = step, row


class Interrupted(Exception):
    """Stopped by a signal at `step`, after saving a checkpoint."""

    def __init__(self, step, signum):
        super().__init__(f"interrupted at step {step}")
        self.step, self.signum = step, signum


class LogRead(NamedTuple):
    """What the loop reads at a log point, summed over all ranks."""
    totals: Sums       # since the last log
    bad: float         # the first exploded step, or -1
    lr: float
    norms: list        # each layer's gradient norm (the same on every rank: DDP averaged the gradients)
    eval_totals: Sums  # since the last evaluation
    stop_any: bool     # some rank was asked to stop


def _earliest(bad: torch.Tensor) -> torch.Tensor:
    bad = torch.where(bad >= 0, bad, math.inf).amin(0)
    return torch.where(bad < math.inf, bad, -1.0)


# How the ranks' values of each part of a log read combine: the step sums add up, the first exploded step
# is the earliest, the lr and the gradient norms are rank 0's (DDP averaged the gradients), stop is anyone's.
COMBINE = {"since_log": lambda rows: rows.sum(0), "since_eval": lambda rows: rows.sum(0), "first_bad": _earliest,
           "lr": lambda rows: rows[0], "stop": lambda rows: rows.amax(0), "norms": lambda rows: rows[0]}


@dataclass
class Training:
    """What one run trains with, built from its config: shared by `resexp train` and `resexp bench`."""
    device: torch.device
    data: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object
    warmup: WarmUp
    step: TrainStep
    run_step: object         # the step as it is called: the TrainStep itself, or its CUDA graph
    modes: dict
    steps_per_epoch: int
    total_steps: int
    batch_size: int          # the global batch, over all ranks
    log_every: int
    eval_every: int
    generator: torch.Generator  # the data order: every rank draws the same one
    order: torch.Tensor | None = None  # this epoch's order of the training images

    def advance(self, done: int, stopping: bool = False) -> "LogRead | None":
        """Training step `done` (1-based) as `resexp train` takes it, the one per-step function that the
        loop, `resexp bench`, `resexp gradients` and the tests share: a new data order at each epoch, the
        step, at log and evaluation points the log read (then the since-log sums restart), the schedule."""
        if (done - 1) % self.steps_per_epoch == 0 or self.order is None:
            self.order = torch.randperm(len(self.data.train_y), device=self.device, generator=self.generator)
        self.take_step(done, self.order)
        read = None
        if done % self.log_every == 0 or done % self.eval_every == 0 or done == self.total_steps:
            read = self.read_log(stopping)
            self.step.since_log.zero_()
        self.schedule.step()
        return read

    def graph_state(self) -> str:
        """How the step ran: "off", "captured", "pending" (not yet captured) or "fell back: <reason>"."""
        return self.run_step.state if isinstance(self.run_step, GraphedStep) else "off"

    def take_step(self, done: int, order: torch.Tensor) -> None:
        """Training step `done` (1-based): this rank's block of the global batch of this epoch's `order`
        (every rank draws the same order), the step, the warm-up's count."""
        size = len(self.step.index)
        first = (done - 1) % self.steps_per_epoch * self.batch_size + distributed.rank() * size
        self.step.index.copy_(order[first:first + size])
        self.run_step()
        self.warmup.observe(done, self.step.last[WRONG], self.step.last[IMAGES])

    def read_log(self, stopping: bool = False) -> LogRead:
        """One host sync (and, over several ranks, one all-gather): the step's sums and flags, combined
        over the ranks part by part (COMBINE), sent as one tensor and read back by the parts' names."""
        step = self.step
        parts = {"since_log": step.since_log, "since_eval": step.since_eval, "first_bad": step.first_bad[None],
                 "lr": self.optimizer.param_groups[0]["lr"].reshape(1),
                 "stop": torch.full((1,), float(stopping), device=step.norms.device), "norms": step.norms}
        rows = distributed.gather(torch.cat(list(parts.values())))  # one row a rank
        sizes = [len(part) for part in parts.values()]
        combined = [COMBINE[name](block) for name, block in zip(parts, rows.split(sizes, dim=1))]
        values, got = torch.cat(combined).tolist(), {}  # the one host sync
        for name, size in zip(parts, sizes):
            got[name], values = values[:size], values[size:]
        return LogRead(Sums(*got["since_log"]), got["first_bad"][0], got["lr"][0], got["norms"],
                       Sums(*got["since_eval"]), got["stop"][0] > 0)


def build_training(cfg, data=None) -> Training:
    """Seed, data on the device, model, optimizer with its lr as a device tensor, schedule and step."""
    device = pick_device(cfg.device)
    jobs = distributed.jobs_at_once()
    if device.type == "cuda":
        cuda.use_device(device)
    else:
        speed.share_cores(jobs)
    world = distributed.world_size()
    set_determinism(cfg.deterministic, device)
    torch.manual_seed(cfg.seed)
    data = data or load_dataset(cfg.dataset, device)
    t = cfg.trainer
    n_train = len(data.train_y)
    if t.batch_size > n_train:
        raise UserError(f"trainer.batch_size={t.batch_size} is larger than the training split ({n_train} images); "
                        f"choose at most {n_train}")
    model = model_from_config(cfg.model, cfg.depth, data.num_classes, data.in_channels).to(device)
    modes = speed_modes(t, device, model)
    if jobs > 1:  # said at the start of each job of a parallel sweep
        modes["side_by_side"] = (f"{jobs} jobs at once" + (f", {torch.get_num_threads()} thread"
                                 f"{'s' * (torch.get_num_threads() > 1)} each" if device.type == "cpu" else ""))
    if modes["precision"] == "timed":
        modes["precision"], modes["precision_why"] = timed_precision(cfg, data)
    if modes["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    forward = model
    ddp = distributed.launched()
    if ddp:  # gradients averaged over ranks inside backward; each rank's augmentation its own
        forward = distributed.wrap(model, device)
        torch.manual_seed(cfg.seed + distributed.rank())
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), device, graphed=bool(modes["cuda_graph"]))
    steps_per_epoch = n_train // t.batch_size  # the last partial batch of an epoch is dropped: one static shape
    total_steps = t.steps or t.epochs * steps_per_epoch
    warmup = WarmUp.from_config(cfg.warmup, cfg.depth, cfg.optimizer.lr, device)
    schedule = make_schedule(cfg.schedule, optimizer, total_steps, steps_per_epoch, warmup)
    step = TrainStep(forward, optimizer, data, t.batch_size // world, precision=modes["precision"],
                     channels_last=modes["channels_last"], divergence_loss=t.divergence_loss, compile=modes["compile"])
    run_step = step
    if modes["cuda_graph"]:
        backend = EmulatedGraphs() if modes["cuda_graph"] == "emulate" else cuda.CudaGraphs(device)
        run_step = GraphedStep(step, backend, eager_steps=cuda.DDP_EAGER_STEPS if ddp else 3,
                               fallback=t.cuda_graph == "auto", ddp=ddp)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    return Training(device, data, model, optimizer, schedule, warmup, step, run_step, modes, steps_per_epoch,
                    total_steps, t.batch_size, t.log_every, t.eval_every or steps_per_epoch, generator)


# bf16 is taken only when clearly faster (10%), so that timing noise does not trade fp32's precision away.
BF16_MARGIN = 0.9


def timed_precision(cfg, data) -> tuple[str, str]:
    """fp32 or bf16, whichever runs this run's own step faster on this CPU (one whose bf16 may or may not
    pay: AVX512-BF16 without AMX), with why. Each is timed for 4 steps after two, alternating, on throwaway
    copies of the run; the choice is remembered for this machine and net. The random stream is left as it
    was, so a run trains the same whether it timed or remembered. Over several processes it is fp32,
    untimed: a copy would build DistributedDataParallel, whose construction every rank must join."""
    if distributed.world_size() > 1:
        return "fp32", "auto: AVX512-BF16, not timed over several processes"
    t = cfg.trainer
    key = speed.cpu_key(f"{label(cfg.model.name, cfg.depth, model_options(cfg.model))} "
                        f"{'x'.join(map(str, data.train_x.shape[1:]))} batch {t.batch_size}")
    choice = speed.remembered(key)
    if choice is None:
        rng = torch.get_rng_state()
        trainings = {p: build_training(OmegaConf.merge(cfg, {"trainer": {"precision": p}}), data)
                     for p in ("fp32", "bf16")}
        seconds = {p: [] for p in trainings}
        for done in range(1, 7):
            for precision, tr in trainings.items():
                started = time.perf_counter()
                tr.advance(done)
                seconds[precision].append(time.perf_counter() - started)
        torch.set_rng_state(rng)
        # the median of steps 3-6: the first steps build oneDNN's kernels, and other work on the machine
        # slows a step now and then
        ms = {p: round(1000 * statistics.median(s[2:]), 1) for p, s in seconds.items()}
        # a net whose bf16 steps went non-finite where fp32's did not (torch's CPU bf16 kernels gave an
        # ImageNet-layout plain net infinite gradients at its second step) trains in fp32, however fast
        unstable = _non_finite(trainings["bf16"].step) and not _non_finite(trainings["fp32"].step)
        faster = ms["bf16"] < BF16_MARGIN * ms["fp32"]
        choice = {"precision": "bf16" if faster and not unstable else "fp32", "ms_per_step": ms,
                  "bf16_non_finite": unstable}
        speed.remember(key, choice)
    ms = choice["ms_per_step"]
    why = ", bf16 non-finite" if choice.get("bf16_non_finite") else ""
    return (choice["precision"],
            f"auto: timed on this CPU, fp32 {ms['fp32']:g} ms, bf16 {ms['bf16']:g} ms a step{why}")


def _non_finite(step) -> bool:
    """Whether a step's loss exploded or any gradient norm was non-finite."""
    return float(step.first_bad) >= 0 or not bool(torch.isfinite(step.norms).all())


def describe_modes(tr: Training) -> dict:
    """The modes the run really trains in, for status.json and the start line."""
    graph = tr.modes["cuda_graph"]
    return {"device": str(tr.device), "precision": tr.modes["precision"], "channels_last": tr.modes["channels_last"],
            "cuda_graph": "emulated: " + tr.graph_state() if graph == "emulate" else tr.graph_state(),
            "compile": tr.modes["compile"],
            **{k: tr.modes[k] for k in ("precision_why", "side_by_side") if tr.modes.get(k)}}


def modes_line(modes: dict) -> str:
    """One line saying how the run trains, printed as it starts."""
    graph = modes["cuda_graph"]
    graph = "no CUDA graph" if graph == "off" else f"{'emulated ' * graph.startswith('emulated')}CUDA graph"
    why = f" ({modes['precision_why']})" if modes.get("precision_why") else ""
    return (f"training on {modes['device']}: {modes['precision']}{why}, "
            f"{'channels_last' if modes['channels_last'] else 'NCHW'}, {graph}"
            f"{', torch.compile' if modes['compile'] else ''}"
            f"{'; ' + modes['side_by_side'] if modes.get('side_by_side') else ''}")


@dataclass
class Prepared:
    """A run ready to train: built, restored from its newest intact checkpoint, its record read back. All of
    it is done before the run's status says `running`, so a run that cannot continue keeps its record."""
    tr: Training
    run: RunState
    kept: list  # the metrics rows up to the checkpoint's step


def prepare(cfg, run_dir: Path) -> Prepared:
    """Build the run's Training and restore it from `run_dir`'s newest intact checkpoint, if any; read the
    metrics it keeps. Writes nothing."""
    tr = build_training(cfg)
    run = resume(run_dir, tr)
    kept = [row for row in read_metrics(run_dir) if row["step"] <= run.step] if run.step else []
    return Prepared(tr, run, kept)


def train(cfg, run_dir: Path, stop=(), prepared: Prepared | None = None) -> dict:
    """Train one model as `cfg` says, logging into `run_dir` and continuing from its latest
    checkpoint if it has one (`prepared`: already built and restored by `prepare`); returns the run's
    final numbers. `stop` turns true on a signal.
    Under torchrun every rank calls this with the same run_dir; only rank 0 writes there."""
    prepared = prepared or prepare(cfg, run_dir)
    tr, run, kept = prepared.tr, prepared.run, prepared.kept
    leader, t = distributed.is_leader(), cfg.trainer
    start = last_log_time = time.perf_counter()
    images_since_log = 0
    if leader:
        say(modes_line(describe_modes(tr)))
    logger = RunLogger(run_dir, resume_step=run.step, kept=kept) if leader else distributed.Silent()
    progress = (RunProgress(label(cfg.model.name, cfg.depth, model_options(cfg.model)), tr.total_steps, run.step,
                            tr.steps_per_epoch) if leader else distributed.Silent())
    with logger, progress:
        for done in range(run.step + 1, tr.total_steps + 1):
            read = tr.advance(done, bool(stop))
            images_since_log += t.batch_size
            if read is not None:
                if read.bad >= 0 or not all(map(math.isfinite, read.norms)):
                    raise Diverged(int(read.bad) if read.bad >= 0 else done, run.row)
                now = time.perf_counter()
                log_point(logger, progress, tr, done, read, images_since_log / (now - last_log_time), t.profile_every)
                images_since_log, last_log_time = 0, now
            progress.step(done)
            if done % tr.eval_every == 0 or done == tr.total_steps:
                run.row = evaluation(tr, t.eval_batch_size, done, read, run.elapsed + time.perf_counter() - start)
                logger.evaluation(run.row)
                run.best_test_error = min(run.best_test_error, run.row["test_error"])
            run.step = done
            # ranks stop together, at a log point, where every rank has read every rank's flag
            halt = bool(stop) if distributed.world_size() == 1 else read is not None and read.stop_any
            if done % (t.checkpoint_every * tr.steps_per_epoch) == 0 or done == tr.total_steps or halt:
                save(run_dir, tr, run, run.elapsed + time.perf_counter() - start, t.keep_checkpoints)
            if halt:
                raise Interrupted(done, getattr(stop, "signum", None) or signal.SIGTERM)
        logger.hparams(cfg, hparam_columns())
    if leader:
        layout = torch.channels_last if tr.modes["channels_last"] else torch.contiguous_format
        write_responses(run_dir, tr.model, tr.data.normalize(tr.data.test_x[:RESPONSE_IMAGES]).contiguous(
            memory_format=layout))
    return outcome(cfg, tr, run, run.elapsed + time.perf_counter() - start)


def log_point(logger, progress, tr: Training, done: int, read: LogRead, images_per_s: float, profile_every) -> None:
    """The curves (metrics.TRAINING over the steps since the last log point), speed and gradient norms."""
    values = {**metrics.curves(read), "train/images_per_s": images_per_s}
    logger.log_point(done, values, tr.step.grad_norms.tags, read.norms, profile_every)
    progress.log_point(done, read.totals.mean_loss, read.totals.error, images_per_s)


def evaluation(tr: Training, batch_size: int, done: int, read: LogRead, elapsed: float) -> dict:
    """A metrics.jsonl row: the training metrics since the last evaluation, the test (and val) split's."""
    def split(name):
        return evaluate(tr.model, tr.data, batch_size, name, tr.modes["precision"], tr.modes["channels_last"])
    test_error, test_loss = split("test")
    tr.step.since_eval.zero_()
    row = {"step": done, "epoch": done / tr.steps_per_epoch, **metrics.row(read), "test_error": test_error,
           "test_loss": test_loss, "lr": float(tr.optimizer.param_groups[0]["lr"]), "time": elapsed}
    if tr.data.val_y is not None:
        row["val_error"], row["val_loss"] = split("val")
    return row


def outcome(cfg, tr: Training, run: RunState, wall_time: float) -> dict:
    """The run's final numbers for status.json, with the papers' number for its net."""
    row = run.row
    return {"final_test_error": row["test_error"], "best_test_error": run.best_test_error,
            "final_train_error": row["train_error"], "parameters": count_parameters(tr.model),
            "steps": tr.total_steps, "wall_time": wall_time, "device": str(tr.device), "modes": describe_modes(tr),
            **({"final_val_error": row["val_error"]} if "val_error" in row else {}),
            **({"warmup_ended_at": tr.warmup.ended_at} if tr.warmup.ended_at else {}),
            **reference(cfg.dataset.name, cfg.model.name, cfg.depth, cfg.model, cfg.trainer.batch_size)}
