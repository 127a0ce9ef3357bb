"""`resexp status [DIR]`: every run under DIR (default runs/) with its state, step/total, last errors and
age, read from its status.json and metrics.jsonl; a run whose process is gone shows as `killed`."""
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ..args import Parser
from ..console import console
from ..errors import UserError
from ..track.status import KILLED, read_status, reached_step


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _error(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def row(run_dir: Path) -> list[str]:
    """One run's line: name, state, step/total, last test and train error, age of its last record; and its
    error (one line, or "")."""
    from ..track.logger import read_metrics
    status = read_status(run_dir)
    try:
        metrics = read_metrics(run_dir)
    except UserError:
        metrics = []
    last = metrics[-1] if metrics else {}
    total = status.get("steps") or status.get("total_steps")
    newest = max(p.stat().st_mtime for p in run_dir.iterdir() if p.is_file())
    state = status["status"] + (" (process gone: resume it)" if status["status"] == KILLED else "")
    return [run_dir.name, state, f"{reached_step(status, metrics)}/{total or '?'}",
            _error(status.get("final_test_error", last.get("test_error"))),
            _error(status.get("final_train_error", last.get("train_error"))), _age(time.time() - newest),
            (status.get("error") or "")]


def main(args) -> int:
    parser = Parser("status", __doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default="runs", metavar="DIR", help="a run, a sweep or runs/ (default)")
    opts = parser.parse_args(args)
    from .runs import find_runs
    root = Path(opts.dir)
    table = Table(title=f"runs under {root}", caption="test/train: last evaluated error in %; age: since the "
                  "run last wrote", show_edge=False)
    for column in ("run", "state", "step", "test %", "train %", "age"):
        table.add_column(column, justify="left" if column in ("run", "state") else "right",
                         overflow="fold", no_wrap=column != "run")
    errors, folder = [], None
    for run_dir in find_runs(root):
        # A run by its own name, under a line naming its folder (a sweep, a day): names that fit a terminal.
        if run_dir.parent != folder and run_dir != root:
            folder = run_dir.parent
            table.add_row(f"[dim]{folder.relative_to(root) if folder != root else root}/", end_section=False)
        *cells, error = row(run_dir)
        table.add_row(*cells)
        if error:
            errors.append(f"{run_dir}: {error}")
    console.print(table)
    for line in errors:  # under the table, whole, rather than a column that squeezes every name
        console.print(f"[red]{escape(line)}", highlight=False, soft_wrap=True)
    return 0
