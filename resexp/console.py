"""The app's consoles: results on stdout, errors and warnings on stderr (one line each), and a run's
train.log, which holds what the terminal showed of the run as plain text."""
from contextlib import contextmanager
from io import StringIO

from rich.console import Console
from rich.text import Text

console = Console()
err_console = Console(stderr=True)
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
