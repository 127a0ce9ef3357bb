"""The training loop: one plain function, top to bottom."""
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import load_dataset
from ..models import count_parameters, model_from_config
from ..paper import reference
from ..track.gradnorms import GradNorms
from ..track.logger import RunLogger
from ..track.progress import training_progress
from ..track.responses import write_responses
from .checkpoint import checkpoint_paths, load_checkpoint, restore, save_checkpoint
from .optim import make_optimizer, make_schedule
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
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@torch.no_grad()
def evaluate(model, data, batch_size, split="test"):
    """(error %, mean loss) on the test (or val) split; one host sync."""
    images, labels = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    model.eval()
    totals = torch.zeros(2, device=images.device)
    for start in range(0, len(labels), batch_size):
        x = data.normalize(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        out = model(x)
        totals += torch.stack([F.cross_entropy(out, y, reduction="sum"), (out.argmax(1) != y).sum()])
    model.train()
    loss_sum, errors = (totals / len(labels)).tolist()
    return 100 * errors, loss_sum


def train(cfg, run_dir: Path, stop=()) -> dict:
    """Train one model as `cfg` says, logging into `run_dir` and continuing from its latest
    checkpoint if it has one; returns the run's final numbers. `stop` turns true on a signal."""
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset, device)
    model = model_from_config(cfg.model, cfg.depth, data.num_classes, data.in_channels).to(device)
    optimizer = make_optimizer(cfg.optimizer, model.parameters())
    t = cfg.trainer
    n_train = len(data.train_y)
    steps_per_epoch = math.ceil(n_train / t.batch_size)
    total_steps = t.steps or t.epochs * steps_per_epoch
    eval_every = t.eval_every or steps_per_epoch
    checkpoint_every = t.checkpoint_every * steps_per_epoch
    warmup = WarmUp.from_config(cfg.warmup, cfg.depth, cfg.optimizer.lr)
    schedule = make_schedule(cfg.schedule, optimizer, total_steps, steps_per_epoch, warmup)
    grad_norms = GradNorms(model)
    generator = torch.Generator(device).manual_seed(cfg.seed)

    # Everything besides model, optimizer and schedule that a resumed run needs to continue exactly.
    # Sums since the last log / evaluation: [loss * images, wrong predictions, images], on the device.
    s = {"step": 0, "order": None, "since_log": torch.zeros(3, device=device),
         "since_eval": torch.zeros(3, device=device), "best_test_error": math.inf, "row": None, "elapsed": 0.0}
    if checkpoint_paths(run_dir):
        path = checkpoint_paths(run_dir)[-1]
        saved = load_checkpoint(path, device)
        restore(model, saved.pop("model"), path, "model")
        restore(optimizer, saved.pop("optimizer"), path, "optimizer")
        schedule.load_state_dict(saved.pop("schedule"))
        warmup.load_state_dict(saved.pop("warmup"))
        generator.set_state(saved.pop("generator").cpu())
        torch.set_rng_state(saved.pop("torch_rng").cpu())
        if "cuda_rng" in saved:
            torch.cuda.set_rng_state_all([state.cpu() for state in saved.pop("cuda_rng")])
        s.update(saved)

    def checkpoint():
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict(), "warmup": warmup.state_dict(), "generator": generator.get_state(),
                 "torch_rng": torch.get_rng_state(), **s, "elapsed": s["elapsed"] + time.perf_counter() - start}
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        save_checkpoint(run_dir, state, t.keep_checkpoints)

    logger = RunLogger(run_dir, resume_step=s["step"])
    first_bad = torch.full((1,), -1.0, device=device)  # first step whose loss exploded, or -1
    start = last_log_time = time.perf_counter()
    images_since_log = 0
    with logger, training_progress() as progress:
        task = progress.add_task(f"{cfg.model.name}-{cfg.depth}", total=total_steps, completed=s["step"],
                                 epoch=f"{s['step'] / steps_per_epoch:.1f}", loss="-", error="-", speed="-")
        for step in range(s["step"], total_steps):
            batch = step % steps_per_epoch
            if batch == 0 or s["order"] is None:
                s["order"] = torch.randperm(n_train, device=device, generator=generator)
            x, y = data.train_batch(s["order"][batch * t.batch_size:(batch + 1) * t.batch_size], generator)
            out = model(x)
            loss = F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            done = step + 1
            sums = torch.stack([loss.detach() * len(y), (out.detach().argmax(1) != y).sum(),
                                torch.tensor(len(y), device=device)])
            s["since_log"] += sums
            s["since_eval"] += sums
            warmup.observe(done, sums[1], sums[2])
            exploded = ~(loss.detach() <= t.divergence_loss)  # NaN compares false, so it counts too
            first_bad = torch.where((first_bad < 0) & exploded, done, first_bad)
            images_since_log += len(y)
            log_now, eval_now = done % t.log_every == 0, done % eval_every == 0
            if log_now or eval_now or done == total_steps:
                norms = grad_norms.compute()
                *totals, bad, norms_finite = torch.cat([s["since_log"], first_bad,
                                                        torch.isfinite(norms).all()[None]]).tolist()
                if bad >= 0 or not norms_finite:
                    raise Diverged(int(bad) if bad >= 0 else done, s["row"])
                loss_sum, wrong, seen = totals
                now = time.perf_counter()
                speed = images_since_log / (now - last_log_time)
                logger.scalars(done, {"lr": optimizer.param_groups[0]["lr"], "throughput/images_per_s": speed,
                                      **dict(zip(grad_norms.tags, norms.tolist()))})
                progress.update(task, loss=f"{loss_sum / seen:.3f}", error=f"{100 * wrong / seen:.1f}%",
                                speed=f"{speed:.0f}")
                s["since_log"].zero_()
                images_since_log, last_log_time = 0, now
            optimizer.step()
            schedule.step()
            progress.update(task, advance=1, epoch=f"{done / steps_per_epoch:.1f}")
            if eval_now or done == total_steps:
                test_error, test_loss = evaluate(model, data, t.eval_batch_size)
                loss_sum, wrong, seen = s["since_eval"].tolist()
                s["since_eval"].zero_()
                s["row"] = {"step": done, "epoch": done / steps_per_epoch,
                            "train_error": 100 * wrong / seen, "train_loss": loss_sum / seen,
                            "test_error": test_error, "test_loss": test_loss, "lr": optimizer.param_groups[0]["lr"],
                            "time": s["elapsed"] + time.perf_counter() - start}
                if data.val_y is not None:
                    s["row"]["val_error"], s["row"]["val_loss"] = evaluate(model, data, t.eval_batch_size, "val")
                logger.evaluation(s["row"])
                s["best_test_error"] = min(s["best_test_error"], test_error)
            s["step"] = done
            if done % checkpoint_every == 0 or done == total_steps or stop:
                checkpoint()
            if stop:
                raise Interrupted(done, stop.signum)
        logger.hparams(cfg, {"final/test_error": s["row"]["test_error"], "final/train_error": s["row"]["train_error"],
                             "final/best_test_error": s["best_test_error"]}, total_steps)
    write_responses(run_dir, model, data.normalize(data.test_x[:t.eval_batch_size]))
    row = s["row"]
    return {"final_test_error": row["test_error"], "best_test_error": s["best_test_error"],
            "final_train_error": row["train_error"], "parameters": count_parameters(model),
            "steps": total_steps, "wall_time": s["elapsed"] + time.perf_counter() - start, "device": str(device),
            **({"final_val_error": row["val_error"]} if "val_error" in row else {}),
            **({"warmup_ended_at": warmup.ended_at} if warmup.ended_at else {}),
            **reference(cfg.dataset.name, cfg.model.name, cfg.depth, cfg.model.shortcut, cfg.model)}
