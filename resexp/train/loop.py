"""The training loop: one plain function, top to bottom."""
import math
import os
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..data import load_dataset
from ..errors import UserError
from ..models import count_parameters, model_from_config
from ..paper import reference
from ..track.logger import RunLogger
from ..track.progress import training_progress
from ..track.responses import RESPONSE_IMAGES, write_responses
from . import distributed
from .checkpoint import checkpoint_paths, load_checkpoint, restore, save_checkpoint
from .optim import make_optimizer, make_schedule
from .graphs import CudaGraphs, EmulatedGraphs, GraphedStep
from .step import TrainStep, autocast
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


def pick_device(name: str) -> torch.device:
    return torch.device(distributed.resolve_device(name, torch.cuda.device_count(), distributed.device_slot()))


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere torch emulates it, slowly
    (9x slower than fp32 for ResNet-20 on the 2-core AVX2 machine)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def channels_last_safe(model: torch.nn.Module) -> bool:
    """False where torch's CPU kernels hang in channels_last: a strided 1x1 convolution of < 8 input channels
    (seen with 2->6, 3->8, 4->8 and 6->16 channels, torch 2.13)."""
    return not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1
                   and m.in_channels < 8 for m in model.modules())


def speed_modes(t, device: torch.device, model: torch.nn.Module | None = None) -> dict:
    """trainer.precision / channels_last / cuda_graph with `auto` resolved for this device: on CUDA bf16,
    channels_last and the graph; on the CPU channels_last where the model allows it (15-25% faster for
    ResNet-20) and bf16 only where the CPU has bf16 units. cuda_graph is True, False or "emulate"."""
    cuda = device.type == "cuda"

    def pick(value, on_cuda, on_cpu):
        value = {"on": True, "off": False}.get(value, value)  # as typed on the command line
        return (on_cuda if cuda else on_cpu) if value == "auto" else value

    cpu_layout = model is not None and channels_last_safe(model)
    graph = pick(t.cuda_graph, True, False)
    return {"precision": pick(t.precision, "bf16", "bf16" if native_bf16_cpu() else "fp32"),
            "channels_last": bool(pick(t.channels_last, True, cpu_layout)),
            "cuda_graph": graph if graph == "emulate" else bool(graph) and cuda, "compile": bool(t.compile)}


def set_determinism(deterministic: bool, device: torch.device) -> None:
    """`deterministic=true`: bit-identical runs (and resumes) on a GPU too, at the cost of cudnn's fastest
    algorithms. Otherwise cudnn.benchmark picks the fastest convolution algorithm for each shape."""
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' condition for reproducibility
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports inductor: 3 s
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


@torch.no_grad()
def evaluate(model, data, batch_size, split="test", precision="fp32", channels_last=False):
    """(error %, mean loss) on the test (or val) split, in large batches without autograd; one host sync."""
    images, labels = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.eval()
    totals = torch.zeros(2, device=images.device)
    for start in range(0, len(labels), batch_size):
        x = data.normalize(images[start:start + batch_size]).contiguous(memory_format=memory_format)
        y = labels[start:start + batch_size]
        with autocast(x.device, precision):
            out = model(x).float()
        totals += torch.stack([F.cross_entropy(out, y, reduction="sum"), (out.argmax(1) != y).sum()])
    model.train()
    loss_sum, errors = (totals / len(labels)).tolist()
    return 100 * errors, loss_sum


class LogRead(NamedTuple):
    """What the loop reads at a log point, summed over all ranks."""
    totals: list       # [loss x images, wrong predictions, images] since the last log
    bad: float         # the first exploded step, or -1
    lr: float
    norms: list        # each layer's gradient norm (the same on every rank: DDP averaged the gradients)
    eval_totals: list  # like totals, since the last evaluation
    stop_any: bool     # some rank was asked to stop


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

    def take_step(self, done: int, order: torch.Tensor) -> None:
        """Training step `done` (1-based): this rank's block of the global batch of this epoch's `order`
        (every rank draws the same order), the step, the warm-up's count."""
        size = len(self.step.index)
        first = (done - 1) % self.steps_per_epoch * self.batch_size + distributed.rank() * size
        self.step.index.copy_(order[first:first + size])
        self.run_step()
        self.warmup.observe(done, self.step.last[1], self.step.last[2])

    def read_log(self, stopping: bool = False) -> LogRead:
        """One host sync (and, over several ranks, one all-gather): the step's sums and flags, reduced."""
        step = self.step
        mine = torch.cat([step.since_log, step.since_eval, step.first_bad[None],
                          self.optimizer.param_groups[0]["lr"].reshape(1),
                          torch.full((1,), float(stopping), device=step.norms.device), step.norms])
        rows = distributed.gather(mine)  # columns: 0-2 since_log, 3-5 since_eval, 6 first_bad, 7 lr, 8 stop, 9- norms
        bad = rows[:, 6]
        bad = torch.where(bad >= 0, bad, math.inf).min()
        values = torch.cat([rows[:, :6].sum(0), bad[None], rows[0, 7:8], rows[:, 8].amax()[None], rows[0, 9:]])
        values = values.tolist()
        return LogRead(values[:3], -1 if values[6] == math.inf else values[6], values[7], values[9:], values[3:6],
                       values[8] > 0)


def build_training(cfg, data=None) -> Training:
    """Seed, data on the device, model, optimizer with its lr as a device tensor, schedule and step."""
    device = pick_device(cfg.device)
    if device.type == "cuda":  # streams, graph captures and NCCL follow the current device: make it the run's
        torch.cuda.set_device(device)
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
    if modes["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    forward = model
    if world > 1:  # gradients averaged over ranks inside backward; each rank's augmentation its own
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
        # DDP needs 11 eager iterations before a capture (PyTorch's CUDA graphs notes, "Usage with DDP").
        backend = EmulatedGraphs() if modes["cuda_graph"] == "emulate" else CudaGraphs(device)
        run_step = GraphedStep(step, backend, eager_steps=11 if world > 1 else 3, fallback=t.cuda_graph == "auto")
    return Training(device, data, model, optimizer, schedule, warmup, step, run_step, modes, steps_per_epoch,
                    total_steps, t.batch_size)


def train(cfg, run_dir: Path, stop=()) -> dict:
    """Train one model as `cfg` says, logging into `run_dir` and continuing from its latest
    checkpoint if it has one; returns the run's final numbers. `stop` turns true on a signal.
    Under torchrun every rank calls this with the same run_dir; only rank 0 writes there."""
    tr = build_training(cfg)
    leader = distributed.is_leader()
    device, data, model, optimizer, schedule, warmup, step = (tr.device, tr.data, tr.model, tr.optimizer,
                                                              tr.schedule, tr.warmup, tr.step)
    t = cfg.trainer
    n_train, steps_per_epoch, total_steps = len(data.train_y), tr.steps_per_epoch, tr.total_steps
    eval_every = t.eval_every or steps_per_epoch
    checkpoint_every = t.checkpoint_every * steps_per_epoch
    evaluate_split = partial(evaluate, model, data, t.eval_batch_size, precision=tr.modes["precision"],
                             channels_last=tr.modes["channels_last"])
    generator = torch.Generator(device).manual_seed(cfg.seed)  # the data order

    # Everything besides model, optimizer, schedule and step sums that a resumed run needs to continue exactly.
    s = {"step": 0, "order": None, "best_test_error": math.inf, "row": None, "elapsed": 0.0}
    if checkpoint_paths(run_dir):
        path = checkpoint_paths(run_dir)[-1]
        saved = load_checkpoint(path, device)
        ranks = saved.pop("ranks", [])  # several ranks: each one's own augmentation stream and partial sums
        saved.update(ranks[distributed.rank()] if distributed.rank() < len(ranks) else {})
        restore(model, saved.pop("model"), path, "model")
        restore(optimizer, saved.pop("optimizer"), path, "optimizer")
        schedule.load_state_dict(saved.pop("schedule"))
        warmup.load_state_dict(saved.pop("warmup"))
        generator.set_state(saved.pop("generator").cpu())
        torch.set_rng_state(saved.pop("torch_rng").cpu())
        if "cuda_rng" in saved:
            torch.cuda.set_rng_state_all([state.cpu() for state in saved.pop("cuda_rng")])
        step.load_state_dict({k: saved.pop(k) for k in ("since_log", "since_eval")}, saved["step"])
        s.update(saved)

    def checkpoint():
        ranks = distributed.gather_objects({"torch_rng": torch.get_rng_state(), **step.state_dict()})
        if leader:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "schedule": schedule.state_dict(), "warmup": warmup.state_dict(),
                     "generator": generator.get_state(), **s, **ranks[0],
                     "elapsed": s["elapsed"] + time.perf_counter() - start}
            if device.type == "cuda":
                state["cuda_rng"] = torch.cuda.get_rng_state_all()
            if len(ranks) > 1:
                state["ranks"] = ranks
            save_checkpoint(run_dir, state, t.keep_checkpoints)
        distributed.barrier()  # no rank moves on, or exits, before the checkpoint is on disk

    logger = RunLogger(run_dir, resume_step=s["step"]) if leader else distributed.Silent()
    start = last_log_time = time.perf_counter()
    images_since_log = 0
    with logger, training_progress() if leader else distributed.Silent() as progress:
        task = progress.add_task(f"{cfg.model.name}-{cfg.depth}", total=total_steps, completed=s["step"],
                                 epoch=f"{s['step'] / steps_per_epoch:.1f}", loss="-", error="-", speed="-")
        for done in range(s["step"] + 1, total_steps + 1):
            if (done - 1) % steps_per_epoch == 0 or s["order"] is None:
                s["order"] = torch.randperm(n_train, device=device, generator=generator)
            tr.take_step(done, s["order"])
            images_since_log += t.batch_size
            log_now, eval_now = done % t.log_every == 0, done % eval_every == 0
            stop_any = False
            if log_now or eval_now or done == total_steps:
                totals, bad, lr_now, norms, eval_totals, stop_any = tr.read_log(bool(stop))
                if bad >= 0 or not all(map(math.isfinite, norms)):
                    raise Diverged(int(bad) if bad >= 0 else done, s["row"])
                loss_sum, wrong, seen = totals
                now = time.perf_counter()
                speed = images_since_log / (now - last_log_time)
                logger.scalars(done, {"lr": lr_now, "throughput/images_per_s": speed,
                                      **dict(zip(step.grad_norms.tags, norms))})
                logger.gradient_profile(done, step.grad_norms.tags, norms, t.profile_every)
                progress.update(task, loss=f"{loss_sum / seen:.3f}", error=f"{100 * wrong / seen:.1f}%",
                                speed=f"{speed:.0f}")
                step.since_log.zero_()
                images_since_log, last_log_time = 0, now
            schedule.step()
            progress.update(task, advance=1, epoch=f"{done / steps_per_epoch:.1f}")
            if eval_now or done == total_steps:
                test_error, test_loss = evaluate_split()
                loss_sum, wrong, seen = eval_totals
                step.since_eval.zero_()
                s["row"] = {"step": done, "epoch": done / steps_per_epoch,
                            "train_error": 100 * wrong / seen, "train_loss": loss_sum / seen,
                            "test_error": test_error, "test_loss": test_loss, "lr": float(optimizer.param_groups[0]["lr"]),
                            "time": s["elapsed"] + time.perf_counter() - start}
                if data.val_y is not None:
                    s["row"]["val_error"], s["row"]["val_loss"] = evaluate_split("val")
                logger.evaluation(s["row"])
                s["best_test_error"] = min(s["best_test_error"], test_error)
            s["step"] = done
            halt = bool(stop) if distributed.world_size() == 1 else stop_any  # ranks stop together at a log point
            if done % checkpoint_every == 0 or done == total_steps or halt:
                checkpoint()
            if halt:
                raise Interrupted(done, getattr(stop, "signum", None) or signal.SIGTERM)
        logger.hparams(cfg, {"final/test_error": s["row"]["test_error"], "final/train_error": s["row"]["train_error"],
                             "final/best_test_error": s["best_test_error"]}, total_steps)
    if leader:
        layout = torch.channels_last if tr.modes["channels_last"] else torch.contiguous_format
        images = data.normalize(data.test_x[:RESPONSE_IMAGES]).contiguous(memory_format=layout)
        write_responses(run_dir, model, images)
    row = s["row"]
    return {"final_test_error": row["test_error"], "best_test_error": s["best_test_error"],
            "final_train_error": row["train_error"], "parameters": count_parameters(model),
            "steps": total_steps, "wall_time": s["elapsed"] + time.perf_counter() - start, "device": str(device),
            **({"final_val_error": row["val_error"]} if "val_error" in row else {}),
            **({"warmup_ended_at": warmup.ended_at} if warmup.ended_at else {}),
            **reference(cfg.dataset.name, cfg.model.name, cfg.depth, cfg.model.shortcut, cfg.model)}
