"""`resexp bench`: the real training step of `resexp train` (batch gather and augmentation on the device,
forward, backward, optimizer, sums, divergence flag, gradient norms, a log read every trainer.log_every
steps) timed in each speed mode, with the hours the paper's CIFAR presets would take at that speed."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.table import Table

from .args import Parser
from .errors import UserError
from .files import check_writable, write_text
from .sweep import compose_job, sweep_jobs
from .config import check_group_option, validate
from .console import console
from .track.status import STATUS_FILE, read_status
from .train.cuda import device_names

# mode name -> trainer overrides. A mode is "<eager|graph|graph+compile>-<fp32|bf16>[-cl]" (cl: channels_last).
ENGINES = {"eager": ["trainer.cuda_graph=false"], "graph": ["trainer.cuda_graph=true"],
           "graph+compile": ["trainer.cuda_graph=true", "trainer.compile=true"],
           "eager+compile": ["trainer.cuda_graph=false", "trainer.compile=true"]}
PRESETS = ("cifar10_fig6", "cifar10_table6")


def mode_overrides(mode: str) -> list[str]:
    engine, precision, *layout = mode.split("-")
    if engine not in ENGINES or precision not in ("fp32", "bf16") or layout not in ([], ["cl"]):
        raise UserError(f"mode {mode!r} is invalid; a mode is ENGINE-PRECISION[-cl] with ENGINE one of "
                        f"{', '.join(ENGINES)} and PRECISION fp32 or bf16, e.g. graph-bf16-cl")
    return [*ENGINES[engine], f"trainer.precision={precision}", f"trainer.channels_last={bool(layout)}".lower()]


def default_modes(cuda: bool) -> list[str]:
    """Every eager and graph mode on CUDA; on the CPU fp32 with and without channels_last, and bf16 with
    channels_last where the CPU has bf16 units (without them it is emulated, 9x slower)."""
    if not cuda:
        from .train.speed import cpu_bf16_units
        return ["eager-fp32", "eager-fp32-cl", *(["eager-bf16-cl"] if cpu_bf16_units() != "none" else [])]
    return [f"{e}-{p}{cl}" for e in ("eager", "graph") for p in ("fp32", "bf16") for cl in ("", "-cl")]


class _Timed:
    """One speed mode's real training step, built from its config, with the loop's log reads."""

    def __init__(self, cfg):
        from .train.cuda import PeakMemory
        from .train.loop import build_training
        self.cuda = torch.cuda.is_available() and cfg.device != "cpu"
        self.memory = PeakMemory() if self.cuda else None
        self.tr = build_training(cfg)
        self.log_every, self.done, self.seconds, self.timed = cfg.trainer.log_every, 0, 0.0, 0

    def run(self, count: int, timed: bool = True) -> None:
        start = time.perf_counter()
        for _ in range(count):
            self.done += 1
            self.tr.advance(self.done)  # the loop's own step, log reads included
        self.tr.read_log()  # waits for the device
        if timed:
            self.seconds += time.perf_counter() - start
            self.timed += count

    def warm_up(self, count: int) -> float:
        """The untimed first steps (eager steps before a graph capture, compiling; at least until the graph
        is captured, so no capture is timed); the mode's peak GPU memory in GiB over them and one more step,
        above what was allocated before it was built."""
        graphed = getattr(self.tr.run_step, "eager_left", None)
        self.run(max(count, graphed + 1) if graphed is not None else count, timed=False)
        self.run(1)
        return self.memory.gib() if self.cuda else 0.0


def time_modes(cfgs: list, steps: int, warmup_steps: int) -> list[tuple[float, float, str]]:
    """(seconds per step, peak GPU memory in GiB or 0, graph state) of `resexp train`'s step under each
    config; the graph state ("off", "captured" or "fell back: <reason>") says what was really timed. The
    modes take turns, one chunk of steps each, so a host whose speed drifts (a shared VM, a GPU's clock)
    slows them all alike instead of whichever happened to run then."""
    timed = []
    memory = []
    for cfg in cfgs:
        timed.append(_Timed(cfg))
        memory.append(timed[-1].warm_up(warmup_steps))
    chunk = max(1, min(t.log_every for t in timed) if timed[0].cuda else 1)
    left = steps - 1
    while left > 0:
        for t in timed:
            t.run(min(chunk, left))
        left -= min(chunk, left)
    return [(t.seconds / t.timed, m, t.tr.graph_state()) for t, m in zip(timed, memory)]


def preset_jobs(preset: str) -> list[tuple[str, int, int, int, int]]:
    """(model, depth, steps, batch size, pixels per image side) of every job of an experiment preset,
    from its own sweep parameters."""
    from .data.cifar import SIDE
    from hydra import compose, initialize_config_module
    with initialize_config_module("resexp.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"+experiment={preset}"], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    jobs = []
    for overrides in sweep_jobs(params):
        job = compose_job([f"+experiment={preset}", *overrides])
        side = job.dataset.get("image_size") or SIDE  # CIFAR's files fix their size; other sets say theirs
        jobs.append((job.model.name, job.depth, job.trainer.steps, job.trainer.batch_size, side))
    return jobs


def project_hours(preset: str, seconds: dict, batch: int, side: int) -> float | None:
    """Hours of a preset at the step times measured at `batch` images of `side` x `side` pixels, scaled
    to each job's own batch and image size (a step's work grows with its pixels); depths not measured
    are interpolated (or extrapolated) linearly in depth within their family, since a step's time grows
    with its layers."""
    total = 0.0
    for model, depth, steps, job_batch, job_side in preset_jobs(preset):
        measured = sorted((d, s) for (m, d), s in seconds.items() if m == model)
        if len(measured) < 2 and depth not in dict(measured):
            return None
        if depth in dict(measured):
            per_step = dict(measured)[depth]
        else:
            (d0, s0), (d1, s1) = measured[0], measured[-1]
            per_step = max(s0 + (s1 - s0) * (depth - d0) / (d1 - d0), min(s for _, s in measured))
        total += steps * per_step * (job_batch * job_side ** 2) / (batch * side ** 2)
    return total / 3600


def jobs_at_once(folder: Path, jobs: int, overrides: list[str], steps: int, batch: int, cuda: bool) -> float:
    """Images/s in all of `jobs` whole `resexp train` processes started together by hydra/launcher=parallel
    (seeds 0 to jobs-1; on the CPU each with its share of the cores, on CUDA all on the first GPU), start-up
    included, each training `steps` steps of `batch` images; `jobs` = 1: one process alone. A RuntimeError
    naming the exit code and the last line when a job does not finish."""
    sweep = folder / f"jobs{jobs}"
    side_by_side = ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []
    args = [sys.executable, "-m", "resexp", "train", "-m", *overrides, f"trainer.steps={steps}",
            f"trainer.log_every={steps}", f"trainer.eval_every={steps}", *side_by_side,
            f"seed={','.join(map(str, range(jobs)))}", f"hydra.sweep.dir={sweep}"]
    env = dict(os.environ)
    if cuda:  # one GPU: the jobs share it, as jobs_per_gpu does on a machine of one
        env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, timeout=3600, cwd=folder, env=env)
    seconds = time.perf_counter() - started
    finished = [read_status(p.parent) for p in sweep.glob(f"*/{STATUS_FILE}")]
    if result.returncode or [s.get("status") for s in finished] != ["finished"] * jobs:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{jobs} jobs at once: exit {result.returncode}: {last[:150]}")
    return jobs * steps * batch / seconds


def main(args) -> int:
    parser = Parser("bench", __doc__)
    parser.add_argument("--models", default="plain,resnet", help="comma-separated model names (default: plain,resnet)")
    parser.add_argument("--depths", default="20,56,110", help="comma-separated depths (default: 20,56,110)")
    parser.add_argument("--modes", default=None,
                        help="comma-separated ENGINE-PRECISION[-cl] modes, ENGINE eager, graph, graph+compile or "
                             "eager+compile (default: every eager and graph mode the device has)")
    parser.add_argument("--image-size", type=int, default=32, help="pixels per side (default: 32, CIFAR)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model and mode (default: 20 on "
                        "CUDA, 5 on the CPU)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="untimed steps first, graph capture and "
                        "compiling included (default: 5 on CUDA, 2 on the CPU)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE (- for stdout)")
    parser.add_argument("--jobs", type=int, default=None, metavar="K", help="also K whole `resexp train` "
                        "processes at once against one (hydra/launcher=parallel; each trains 10x --steps steps in "
                        "the first mode): whether jobs side by side pay here")
    opts = parser.parse_args(args)
    cuda = opts.device == "cuda" or (opts.device == "auto" and torch.cuda.is_available())
    opts.steps = opts.steps if opts.steps is not None else (20 if cuda else 5)
    opts.warmup_steps = opts.warmup_steps if opts.warmup_steps is not None else (5 if cuda else 2)
    for name in ("image_size", "batch_size", "steps", "warmup_steps", *(["jobs"] if opts.jobs is not None else [])):
        if getattr(opts, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}={getattr(opts, name)} is invalid; it must be a positive integer")
    if opts.json and opts.json != "-":
        check_writable("--json", opts.json)  # before the benchmark, not after it
    modes = opts.modes.split(",") if opts.modes else default_modes(cuda)
    base = [f"device={opts.device}", "dataset=synthetic", f"dataset.image_size={opts.image_size}",
            f"dataset.train_size={opts.batch_size * (opts.warmup_steps + opts.steps)}", "dataset.test_size=16",
            f"trainer.batch_size={opts.batch_size}", "trainer.steps=1000000"]
    jobs = [(model, depth, mode) for model in opts.models.split(",") for depth in opts.depths.split(",")
            for mode in modes]
    for model in opts.models.split(","):
        check_group_option("model", model, key="--models")
    configs = []
    for model, depth, mode in jobs:  # every job is checked before the first one is timed
        cfg = compose_job([*base, f"model={model}", f"depth={depth}", *mode_overrides(mode)])
        validate(cfg)
        configs.append(cfg)

    device_name = device_names()[0] if cuda else f"CPU, {torch.get_num_threads()} threads"
    results = []
    for first in range(0, len(jobs), len(modes)):  # one net at a time, its modes taking turns
        group = slice(first, first + len(modes))
        for (model, depth, mode), (seconds, memory, graph) in zip(jobs[group], time_modes(
                configs[group], opts.steps, opts.warmup_steps)):
            results.append({"model": model, "depth": int(depth), "mode": mode, "graph": graph,
                            "ms_per_step": 1000 * seconds, "images_per_s": opts.batch_size / seconds,
                            "peak_memory_gib": memory})
    results.sort(key=lambda r: modes.index(r["mode"]))  # the table: mode by mode
    projections = {}
    for mode in modes:
        seconds = {(r["model"], r["depth"]): r["ms_per_step"] / 1000 for r in results if r["mode"] == mode}
        projections[mode] = {p: project_hours(p, seconds, opts.batch_size, opts.image_size) for p in PRESETS}

    table = Table(title=f"training step on {device_name}", caption=f"batch {opts.batch_size}, "
                  f"{opts.image_size}x{opts.image_size}; mode: engine-precision[-cl = channels_last]")
    for column in ("mode", "model", "depth", "graph", "ms/step", "images/s", *(["peak GiB"] if cuda else [])):
        table.add_column(column, justify="left" if column in ("mode", "model", "graph") else "right",
                         no_wrap=column != "graph", overflow="fold")
    for r in results:
        table.add_row(r["mode"], r["model"], str(r["depth"]), r["graph"], f"{r['ms_per_step']:.1f}",
                      f"{r['images_per_s']:,.0f}",
                      *([f"{r['peak_memory_gib']:.2f}"] if cuda else []))
    console.print(table)
    hours = Table(title="hours the paper's presets would take here", caption=f"measured at batch "
                  f"{opts.batch_size}, {opts.image_size}x{opts.image_size}; scaled by pixels per step to each "
                  "preset's own batch and image size; depths not measured: linear in depth through the "
                  "shallowest and deepest measured")
    for column in ("mode", *PRESETS):
        hours.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for mode, by_preset in projections.items():
        hours.add_row(mode, *(f"{h:.2f}" if h is not None else "-" for h in by_preset.values()))
    console.print(hours)
    side_by_side = []
    if opts.jobs and opts.jobs > 1:
        side_by_side = side_by_side_rows(opts, base, modes[0], cuda)
        console.print(side_by_side_table(side_by_side, opts, modes[0]))
    if opts.json:
        report = {"device": device_name, "batch_size": opts.batch_size, "image_size": opts.image_size,
                  "results": results, "projected_hours": projections, "jobs_at_once": side_by_side}
        text = json.dumps(report, indent=2) + "\n"
        sys.stdout.write(text) if opts.json == "-" else write_text(opts.json, text)
    return 0


def side_by_side_rows(opts, base: list[str], mode: str, cuda: bool) -> list[dict]:
    """Per net, images/s of one whole process and of opts.jobs at once, in `mode`."""
    rows = []
    steps = 10 * opts.steps
    with tempfile.TemporaryDirectory(prefix="resexp-bench-") as folder:
        for model in opts.models.split(","):
            for depth in opts.depths.split(","):
                overrides = [*base, f"model={model}", f"depth={depth}", *mode_overrides(mode),
                             f"dataset.train_size={opts.batch_size * steps}"]
                net = Path(folder) / f"{model}{depth}"
                net.mkdir()
                try:
                    speeds = {k: jobs_at_once(net, k, overrides, steps, opts.batch_size, cuda) for k in (1, opts.jobs)}
                except RuntimeError as e:
                    raise UserError(f"bench --jobs: {model}-{depth}: {e}") from None
                rows.append({"model": model, "depth": int(depth), "mode": mode, "jobs": opts.jobs, "steps": steps,
                             "one_job_images_per_s": speeds[1], "images_per_s": speeds[opts.jobs]})
    return rows


def side_by_side_table(rows: list[dict], opts, mode: str) -> Table:
    table = Table(title=f"{opts.jobs} jobs at once against one", caption=f"whole `resexp train` processes, "
                  f"start-up included, {10 * opts.steps} steps of {opts.batch_size} images each, {mode}")
    for column in ("model", "depth", "one job images/s", f"{opts.jobs} at once images/s", "gain"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        table.add_row(r["model"], str(r["depth"]), f"{r['one_job_images_per_s']:,.0f}", f"{r['images_per_s']:,.0f}",
                      f"{r['images_per_s'] / r['one_job_images_per_s']:.2f}x")
    return table
