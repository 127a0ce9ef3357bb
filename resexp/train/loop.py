"""The training loop: one plain function, top to bottom."""
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import load_dataset
from ..models import build_model, count_parameters
from ..track.gradnorms import GradNorms
from ..track.logger import RunLogger
from ..track.progress import training_progress
from .optim import make_optimizer, make_schedule


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@torch.no_grad()
def evaluate(model, data, batch_size):
    """(error %, mean loss) on the test split; one host sync."""
    model.eval()
    totals = torch.zeros(2, device=data.test_x.device)
    for start in range(0, len(data.test_y), batch_size):
        x = data.normalize(data.test_x[start:start + batch_size])
        y = data.test_y[start:start + batch_size]
        out = model(x)
        totals += torch.stack([F.cross_entropy(out, y, reduction="sum"), (out.argmax(1) != y).sum()])
    model.train()
    loss_sum, errors = (totals / len(data.test_y)).tolist()
    return 100 * errors, loss_sum


def train(cfg, run_dir: Path) -> dict:
    """Train one model as `cfg` says, logging into `run_dir`; returns the run's final numbers."""
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset, device)
    model = build_model(arch=cfg.model.name, depth=cfg.depth, shortcut=cfg.model.shortcut,
                        activation=cfg.model.activation, width=cfg.model.width, norm=cfg.model.norm,
                        init=cfg.model.init, num_classes=data.num_classes,
                        in_channels=data.in_channels).to(device)
    optimizer = make_optimizer(cfg.optimizer, model.parameters())
    t = cfg.trainer
    n_train = len(data.train_y)
    steps_per_epoch = math.ceil(n_train / t.batch_size)
    total_steps = t.epochs * steps_per_epoch
    eval_every = t.eval_every or steps_per_epoch
    schedule = make_schedule(cfg.schedule, optimizer, total_steps)
    grad_norms = GradNorms(model)
    logger = RunLogger(run_dir)
    generator = torch.Generator(device).manual_seed(cfg.seed)

    # Sums since the last log / evaluation: [loss * images, wrong predictions, images], kept on the device.
    since_log = torch.zeros(3, device=device)
    since_eval = torch.zeros(3, device=device)
    best_test_error, row = float("inf"), None
    start = last_log_time = time.perf_counter()
    images_since_log = 0
    with training_progress() as progress:
        task = progress.add_task(f"{cfg.model.name}-{cfg.depth}", total=total_steps,
                                 epoch=0, loss="-", error="-", speed="-")
        for step in range(total_steps):
            epoch, batch = divmod(step, steps_per_epoch)
            if batch == 0:
                order = torch.randperm(n_train, device=device, generator=generator)
            x, y = data.train_batch(order[batch * t.batch_size:(batch + 1) * t.batch_size], generator)
            out = model(x)
            loss = F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            sums = torch.stack([loss.detach() * len(y), (out.detach().argmax(1) != y).sum(), torch.tensor(len(y), device=device)])
            since_log += sums
            since_eval += sums
            images_since_log += len(y)
            done = step + 1
            if done % t.log_every == 0 or done == total_steps:
                norms = grad_norms.compute()
                loss_sum, wrong, seen = since_log.tolist()
                now = time.perf_counter()
                speed = images_since_log / (now - last_log_time)
                logger.scalars(done, {"lr": optimizer.param_groups[0]["lr"], "throughput/images_per_s": speed})
                logger.scalars(done, dict(zip(grad_norms.tags, norms.tolist())))
                progress.update(task, loss=f"{loss_sum / seen:.3f}", error=f"{100 * wrong / seen:.1f}%",
                                speed=f"{speed:.0f}")
                since_log.zero_()
                images_since_log, last_log_time = 0, now
            optimizer.step()
            schedule.step()
            progress.update(task, advance=1, epoch=f"{done / steps_per_epoch:.1f}")
            if done % eval_every == 0 or done == total_steps:
                test_error, test_loss = evaluate(model, data, t.eval_batch_size)
                loss_sum, wrong, seen = since_eval.tolist()
                since_eval.zero_()
                row = {"step": done, "epoch": done / steps_per_epoch,
                       "train_error": 100 * wrong / seen, "train_loss": loss_sum / seen,
                       "test_error": test_error, "test_loss": test_loss,
                       "lr": optimizer.param_groups[0]["lr"], "time": time.perf_counter() - start}
                logger.evaluation(row)
                best_test_error = min(best_test_error, test_error)
    logger.close()
    return {"final_test_error": row["test_error"], "best_test_error": best_test_error,
            "final_train_error": row["train_error"], "parameters": count_parameters(model),
            "steps": total_steps, "wall_time": time.perf_counter() - start, "device": str(device)}
