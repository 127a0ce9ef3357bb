"""`resexp doctor`: checks that the speed paths of `resexp train` work on this machine, in a few minutes.

On a GPU it checks the real CUDA graph against the eager step (crop and flip drawn inside the graph, lr
drops after the capture), that `cuda_graph=auto` really captures with SGD and Adam, torch.compile inside
the graph, two deterministic runs alike, stop and resume alike, DDP inside a graph under torchrun (one
process, NCCL), with two GPUs or more a 2-job sweep (one job per GPU) and a 2-rank DDP run, and
`resexp bench` for ResNet-20/56/110. Without a GPU the same checks run on the CPU against the emulated
graph (trainer.cuda_graph=emulate) with tiny nets, the GPU-only ones skipped.
"""
import contextlib
import io
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
from .sweep import compose_job
from .console import console
from .track.logger import read_metrics
from .track.status import STATUS_FILE, read_status

# The nets the checks train: ResNet-20 on 32x32 images in batches of 128 on a GPU (as `resexp train` runs
# CIFAR), ResNet-8 on 8x8 in batches of 64 in fp32 on the CPU (seconds; what is checked there is the graph
# logic, not speed). Crop and flip on: random draws inside the graph.
BASE = {"cuda": ["dataset.image_size=32", "dataset.train_size=4096", "dataset.test_size=512",
                 "trainer.batch_size=128", "depth=20", "trainer.log_every=5", "device=cuda"],
        "cpu": ["dataset.image_size=8", "dataset.train_size=256", "dataset.test_size=128",
                "trainer.batch_size=64", "depth=8", "trainer.log_every=2", "device=cpu", "trainer.precision=fp32"]}
COMMON = ["dataset=synthetic", "dataset.augment.flip=true", "dataset.augment.crop_padding=2", "model=resnet"]
GRAPH = {"cuda": "trainer.cuda_graph=true", "cpu": "trainer.cuda_graph=emulate"}
CAPTURED = ("captured", "emulated: captured")
# How far graph and eager weights may part after 30 steps (relative to each tensor's largest value): fp32
# runs the same kernels (equal to the bit on an H200); bf16 rounds each product, and a reduction order
# that differs anywhere grows over the steps.
TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2}
CHECKS = ("graph-vs-eager", "auto-sgd", "auto-adam", "compile-in-graph", "deterministic", "resume",
          "ddp-1-process", "sweep-2-gpus", "ddp-2-gpus", "jobs-per-gpu", "bench")


class Failed(Exception):
    """A check's result differs from what it should be; the message says how."""


class Skipped(Exception):
    """The check does not apply here (it needs CUDA, or two GPUs)."""


class Doctor:
    def __init__(self, kind: str, folder: Path):
        self.kind, self.folder = kind, folder

    def cfg(self, *overrides):
        return compose_job([*COMMON, *BASE[self.kind], *overrides])

    def check(self, name: str):
        """Run the check `name` (one of CHECKS): its one-line outcome, or lines; raises Failed or Skipped."""
        if name.startswith("auto-"):
            return self.auto(name.removeprefix("auto-"))
        return getattr(self, name.replace("-", "_"))()

    def needs_gpus(self, count: int) -> None:
        if self.kind != "cuda" or torch.cuda.device_count() < count:
            raise Skipped(f"needs {count} CUDA GPU{'s' * (count > 1)}")

    def graph_vs_eager(self) -> list[str]:
        """SGD and Adam, fp32 and bf16: 30 steps graphed and eager from the same draws, crop and flip inside
        the graph, the lr dropping at steps 9 and 18 (the capture is at step 4); on a torch that has it, the
        capture also checks at each replay that its inputs are alive."""
        from .train.cuda import can_check_liveness
        from .train.loop import build_training
        liveness = self.kind == "cuda" and can_check_liveness()
        lines = []
        for optimizer in ("sgd", "adam"):
            for precision in ("fp32", "bf16"):
                base = ["trainer.steps=30", "schedule.milestones=[0.3,0.6]", "deterministic=true",
                        f"trainer.precision={precision}", f"optimizer={optimizer}"]
                eager = build_training(self.cfg(*base, "trainer.cuda_graph=false"))
                graphed = build_training(self.cfg(*base, GRAPH[self.kind]))
                if liveness:
                    graphed.run_step.backend.check_liveness = True
                for tr in (eager, graphed):
                    torch.manual_seed(1)
                    for done in range(1, 31):
                        tr.advance(done)
                eager.read_log(), graphed.read_log()  # wait for the device
                if graphed.graph_state() != "captured":
                    raise Failed(f"{optimizer} {precision}: not captured ({graphed.graph_state()})")
                worst = max(float((a - b).abs().max() / (a.abs().max() + 1e-12))
                            for a, b in zip(eager.model.state_dict().values(), graphed.model.state_dict().values())
                            if a.is_floating_point())
                if worst > TOLERANCE[precision]:
                    raise Failed(f"{optimizer} {precision}: weights after 30 steps differ by {worst:.1e} (relative) "
                                 f"from the eager run's; at most {TOLERANCE[precision]:g} is allowed")
                lr = float(graphed.optimizer.param_groups[0]["lr"])
                lines.append(f"{optimizer} {precision}: 30 steps, 2 lr drops (lr now {lr:g}): weights within "
                             f"{worst:.1e} of eager")
        lines.append("input liveness checked at each replay" if liveness else
                     f"input liveness not checked (torch {torch.__version__} has no check_input_liveness)"
                     if self.kind == "cuda" else "graph emulated on the CPU")
        return lines

    def auto(self, optimizer: str) -> str:
        from .train.loop import build_training
        graph = "trainer.cuda_graph=auto" if self.kind == "cuda" else GRAPH["cpu"]
        tr = build_training(self.cfg(f"optimizer={optimizer}", graph, "trainer.steps=10"))
        for done in range(1, 11):
            read = tr.advance(done)
        if tr.graph_state() != "captured":
            raise Failed(f"{graph} did not capture ({tr.graph_state()})")
        loss = read.totals.mean_loss
        return f"captured with {tr.modes['precision']}, channels_last={tr.modes['channels_last']}; loss {loss:.3f}"

    def compile_in_graph(self) -> str:
        self.needs_gpus(1)
        from .train.loop import build_training
        started = time.perf_counter()
        tr = build_training(self.cfg("trainer.compile=true", GRAPH["cuda"], "trainer.steps=10"))
        for done in range(1, 11):
            read = tr.advance(done)
        if tr.graph_state() != "captured":
            raise Failed(f"not captured ({tr.graph_state()})")
        loss = read.totals.mean_loss
        if not loss < 10:
            raise Failed(f"loss {loss} after 10 compiled steps")
        return f"captured the compiled step in {time.perf_counter() - started:.0f} s; loss {loss:.3f}"

    def _train(self, name, *overrides, stop=()):
        from .train.loop import train
        run = self.folder / name
        run.mkdir()
        return run, train(self.cfg("deterministic=true", "trainer.steps=20", "trainer.eval_every=10",
                                   GRAPH[self.kind], *overrides), run, stop)

    def deterministic(self) -> str:
        (a, first), (b, _) = self._train("det-a"), self._train("det-b")
        if _rows(a) != _rows(b):
            raise Failed("two deterministic=true runs logged different metrics")
        return f"2 runs of 20 steps alike to the last bit (graph: {first['modes']['cuda_graph']})"

    def resume(self) -> str:
        from .train.loop import Interrupted
        whole, _ = self._train("whole")
        try:
            self._train("parts", stop=_StopAfterRows(self.folder / "parts", 1))
            raise Failed("the stop request was not honoured")
        except Interrupted as e:
            stopped = e.step
        from .train.loop import train
        resumed = train(self.cfg("deterministic=true", "trainer.steps=20", "trainer.eval_every=10", GRAPH[self.kind]),
                        self.folder / "parts")
        if _rows(self.folder / "parts") != _rows(whole):
            raise Failed(f"stopped at step {stopped} and resumed, the metrics differ from a straight run's")
        if resumed["modes"]["cuda_graph"] not in CAPTURED:
            raise Failed(f"the resumed run's graph: {resumed['modes']['cuda_graph']}")
        return f"stopped at step {stopped}, resumed (graph captured again): metrics equal a straight run's"

    def _torchrun(self, name, processes: int, *overrides) -> dict:
        run = self.folder / name
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                "-m", "resexp", "train", *COMMON, *BASE[self.kind], GRAPH[self.kind], "trainer.steps=20",
                f"hydra.run.dir={run}", *overrides]
        result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=self.folder)
        status = read_status(run) or {}
        if result.returncode or status.get("status") != "finished":
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise Failed(f"torchrun exited {result.returncode}: {last[:150]}")
        if status["modes"]["cuda_graph"] not in CAPTURED:
            raise Failed(f"DDP step not captured ({status['modes']['cuda_graph']})")
        return status

    def ddp_1_process(self) -> str:
        status = self._torchrun("ddp1", 1)
        return f"DDP step captured on {status['modes']['device']} ({'NCCL' if self.kind == 'cuda' else 'gloo'})"

    def sweep_2_gpus(self) -> str:
        self.needs_gpus(2)
        sweep = self.folder / "sweep"
        args = [sys.executable, "-m", "resexp", "train", "-m", *COMMON, *BASE["cuda"], "device=auto", "seed=0,1",
                "trainer.steps=20", f"hydra.sweep.dir={sweep}"]
        result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=self.folder)
        statuses = [read_status(p.parent) for p in sorted(sweep.glob(f"*/{STATUS_FILE}"))]
        if result.returncode or [s.get("status") for s in statuses] != ["finished"] * 2:
            raise Failed(f"sweep exited {result.returncode}: {[s.get('error') for s in statuses]}")
        devices = [s["modes"]["device"] for s in statuses]
        graphs = [s["modes"]["cuda_graph"] for s in statuses]
        if devices != ["cuda:0", "cuda:1"] or graphs != ["captured"] * 2:
            raise Failed(f"jobs ran on {devices} with graphs {graphs}")
        return "job 0 on cuda:0, job 1 on cuda:1, both graphs captured"

    def ddp_2_gpus(self) -> str:
        self.needs_gpus(2)
        self._torchrun("ddp2", 2)
        return "2 ranks over NCCL, DDP step captured"

    def jobs_per_gpu(self) -> str:
        """Images/s of 4 ResNet-20 jobs sharing one GPU (hydra/launcher=parallel jobs_per_gpu=4) against one
        job alone: whether small jobs side by side pay on this GPU."""
        from .bench import jobs_at_once
        self.needs_gpus(1)
        try:
            speeds = {jobs: jobs_at_once(self.folder, jobs, [*COMMON, *BASE["cuda"]], 1000, 128, cuda=True)
                      for jobs in (1, 4)}
        except RuntimeError as e:
            raise Failed(str(e)) from None
        return (f"4 jobs on one GPU: {speeds[4]:,.0f} images/s in all, one job {speeds[1]:,.0f} "
                f"({speeds[4] / speeds[1]:.2f}x; whole processes, start-up included)")

    def bench(self) -> list[str]:
        from .bench import time_modes
        depths = (20, 56, 110) if self.kind == "cuda" else (20,)
        mode = ["trainer.cuda_graph=auto", "trainer.precision=auto", "trainer.channels_last=auto"]
        size = 32 if self.kind == "cuda" else 16
        cfgs = [compose_job(["dataset=synthetic", f"dataset.image_size={size}", "dataset.train_size=4096",
                             "dataset.test_size=16", "trainer.batch_size=128", "trainer.steps=1000000",
                             f"device={self.kind}", "model=resnet", f"depth={d}", *mode]) for d in depths]
        steps = 20 if self.kind == "cuda" else 3
        timed = time_modes(cfgs, steps, warmup_steps=5 if self.kind == "cuda" else 1)
        return [f"ResNet-{d}: {128 / seconds:,.0f} images/s (graph {graph})" for d, (seconds, _, graph) in zip(depths, timed)]


class _StopAfterRows:
    """Stands in for Ctrl-C: turns true once the run has logged `n` metrics rows."""

    signum = 2

    def __init__(self, run_dir, n):
        self.run_dir, self.n = run_dir, n

    def __bool__(self):
        path = self.run_dir / "metrics.jsonl"
        return path.exists() and len(path.read_text().splitlines()) >= self.n


def _rows(run_dir) -> list[dict]:
    """The run's metrics rows without their wall times (the one thing two equal runs differ in)."""
    return [{k: v for k, v in row.items() if k != "time"} for row in read_metrics(run_dir)]


def run_checks(kind: str, names) -> list[dict]:
    """Each named check's {"check", "result" (pass, FAIL or skip), "detail", "seconds"}, in order."""
    results = []
    with tempfile.TemporaryDirectory(prefix="resexp-doctor-") as folder:
        doctor = Doctor(kind, Path(folder))
        for name in names:
            started = time.perf_counter()
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # the checks' own runs print progress
                    outcome = doctor.check(name)
                result = "pass"
            except Skipped as e:
                result, outcome = "skip", str(e)
            except Failed as e:
                result, outcome = "FAIL", str(e)
            except Exception as e:  # noqa: BLE001  a crash is a failed check, reported in one line
                result, outcome = "FAIL", f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            for line in outcome if isinstance(outcome, list) else [outcome]:
                results.append({"check": name, "result": result, "detail": line,
                                "seconds": round(time.perf_counter() - started, 1)})
            console.print(f"{name}: {result}", highlight=False)
    return results


def machine(kind: str) -> str:
    if kind == "cuda":
        from .train.cuda import device_names
        names = device_names()
        return f"{len(names)} x {names[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}, no CUDA: graphs emulated"


def main(args) -> int:
    parser = Parser("doctor", __doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: every CUDA GPU here, else the CPU with emulated graphs")
    parser.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated, of: {', '.join(CHECKS)}")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE (- for stdout)")
    opts = parser.parse_args(args)
    names = opts.checks.split(",")
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise UserError(f"--checks: {', '.join(unknown)} unknown; choose from: {', '.join(CHECKS)}")
    if opts.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA GPU is visible; use --device auto or cpu")
    kind = "cuda" if opts.device == "cuda" or (opts.device == "auto" and torch.cuda.is_available()) else "cpu"
    if opts.json and opts.json != "-":
        json_path = Path(opts.json)
        if json_path.exists():
            raise UserError(f"--json {json_path} already exists; choose another file")
        check_writable("--json", json_path)
    where = machine(kind)
    console.print(f"resexp doctor on {where}", highlight=False)
    results = run_checks(kind, names)
    table = Table(title=f"resexp doctor: {where}")
    for column in ("check", "result", "detail", "s"):
        table.add_column(column, justify="right" if column == "s" else "left", overflow="fold")
    for r in results:
        colour = {"pass": "green", "FAIL": "bold red", "skip": "dim"}[r["result"]]
        table.add_row(r["check"], f"[{colour}]{r['result']}[/]", r["detail"], f"{r['seconds']:.0f}")
    console.print(table)
    if opts.json:
        text = json.dumps({"machine": where, "date": time.strftime("%Y-%m-%d"), "results": results}, indent=2)
        sys.stdout.write(text + "\n") if opts.json == "-" else write_text(opts.json, text + "\n")
    return 1 if any(r["result"] == "FAIL" for r in results) else 0
