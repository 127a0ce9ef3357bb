"""The app's consoles: results on stdout, errors and warnings on stderr (one line each), and a run's
train.log, which holds what the terminal showed of the run as plain text."""
import logging
import os
import sys
from contextlib import contextmanager
from io import StringIO

from rich.console import Console
from rich.text import Text


class _Console(Console):
    """A console whose reader may go away (`resexp train ... | head -1`). Rich would end the program with exit
    code 1 there, leaving a run `running` for good; instead what is still printed goes to the null device
    and the program carries on: a run to its end (train.log and its files are the record), while cli.main
    exits non-zero for a command whose printed output was its result."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        discard(self.file)


def discard(stream) -> None:
    """`stream`'s reader is gone: what is still written to it goes to the null device (so neither this
    write nor the flush at exit fails), and stdout_lost() says so."""
    global _lost
    _lost = True
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a file descriptor (a test's captured stream): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


class OutputHandler(logging.StreamHandler):
    """Hydra's log lines on stdout (conf/train.yaml), which a reader that went away does not stop."""

    def handleError(self, record) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            discard(self.stream)
        else:
            super().handleError(record)


def stdout_lost() -> bool:
    """Whether a reader of this process's output went away."""
    return _lost


_lost = False
console = _Console()
err_console = _Console(stderr=True)
_run_log = []  # the open train.log of the run this process trains, if any


@contextmanager
def run_log(path):
    """Lines said (`say`, `log`) within the block are appended to `path` too, flushed line by line so that
    `tail -f train.log` follows the run."""
    with open(path, "a", buffering=1) as f:
        _run_log.append(f)
        try:
            yield
        finally:
            _run_log.remove(f)


def log(line: str) -> None:
    """Append one plain line to the open train.log, if any."""
    for f in _run_log:
        f.write(line + "\n")


def say(message: str, err: bool = False) -> None:
    """Print one line (rich markup allowed) unbroken however narrow the terminal, so that paths and
    commands copy whole; and log it."""
    (err_console if err else console).print(message, highlight=False, soft_wrap=True)
    log(Text.from_markup(message).plain)


def log_renderable(renderable) -> None:
    """A table or other rich renderable into train.log, as plain text."""
    if _run_log:
        text = StringIO()
        Console(file=text, width=200, color_system=None).print(renderable)
        log(text.getvalue().rstrip("\n"))
