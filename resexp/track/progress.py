"""A training run's progress: a rich bar on a terminal; plain lines where stdout is a file or a pipe (nohup,
SLURM, CI), one per log point; train.log gets the lines either way."""
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..console import console, log


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# The bar's optional columns, in their order, with the width each can take; on a narrow terminal they give
# way in the order of DROP (the name, the steps done of the total and both times always stay whole).
OPTIONAL = {"epoch": ("epoch {task.fields[epoch]}", 11), "loss": ("loss {task.fields[loss]}", 11),
            "error": ("err {task.fields[error]}", 10), "speed": ("{task.fields[speed]} img/s", 11)}
DROP = ("epoch", "speed", "loss", "error")
BAR = (10, 40)  # the bar's narrowest and widest, in characters
TIME = 8  # h:mm:ss, up to 99 hours


def _columns(name: str, total: int, width: int) -> list:
    """The progress bar's columns that fit `width` characters, one space between two."""
    whole = len(name) + 2 * len(str(total)) + 1 + 2 * TIME + 4  # name, done/total, elapsed, left, spaces
    shown = dict(OPTIONAL)
    for dropped in DROP:
        if whole + BAR[0] + sum(w + 1 for _, w in shown.values()) <= width:
            break
        del shown[dropped]
    spare = width - whole - sum(w + 1 for _, w in shown.values())
    return [TextColumn("[bold]{task.description}"), BarColumn(bar_width=max(BAR[0], min(BAR[1], spare))),
            MofNCompleteColumn(), *(TextColumn(text) for text, _ in shown.values()),
            TimeElapsedColumn(), TimeRemainingColumn()]


class RunProgress:
    """Progress of one run, `name`, from `done` to `total` steps."""

    def __init__(self, name: str, total: int, done: int, steps_per_epoch: int):
        self.name, self.total, self.first, self.steps_per_epoch = name, total, done, steps_per_epoch
        self.start = time.perf_counter()
        self.bar = None
        if console.is_terminal:
            self.bar = Progress(*_columns(name, total, console.width), console=console, transient=False)
            self.task = self.bar.add_task(name, total=total, completed=done, epoch=f"{done / steps_per_epoch:.1f}",
                                          loss="-", error="-", speed="-")

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()
        return False

    def step(self, done: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=done, epoch=f"{done / self.steps_per_epoch:.1f}")

    def log_point(self, done: int, loss: float, error: float, speed: float) -> None:
        """One line at each log point: on stdout when it is not a terminal, and in train.log."""
        if self.bar:
            self.bar.update(self.task, loss=f"{loss:.3f}", error=f"{error:.1f}%", speed=f"{speed:.0f}")
        elapsed = time.perf_counter() - self.start
        left = elapsed / (done - self.first) * (self.total - done) if done > self.first else 0
        line = (f"{self.name} step {done}/{self.total} epoch {done / self.steps_per_epoch:.1f} loss {loss:.3f} "
                f"err {error:.1f}% {speed:.0f} img/s elapsed {_clock(elapsed)} left {_clock(left)}")
        if not self.bar:
            console.print(line, highlight=False, soft_wrap=True, markup=False)  # flushed by rich
        log(line)
