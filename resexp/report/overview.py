"""`resexp status [DIR]`: every run under DIR (default runs/) with its state, step/total, last errors and
age, read from its status.json and metrics.jsonl; a run whose process is gone shows as `killed`."""
import argparse
import time
from pathlib import Path

from rich.table import Table

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


def row(run_dir: Path, root: Path) -> list[str]:
    """One run's line: path, state, step/total, last test and train error, age of its last record."""
    from ..track.logger import read_metrics
    status = read_status(run_dir)
    try:
        metrics = read_metrics(run_dir)
    except UserError:
        metrics = []
    last = metrics[-1] if metrics else {}
    step = reached_step(status, metrics)
    total = status.get("steps") or status.get("total_steps")
    newest = max(p.stat().st_mtime for p in run_dir.iterdir() if p.is_file())
    state = status["status"] + (" (process gone: resume it)" if status["status"] == KILLED else "")
    return [str(run_dir.relative_to(root)) if run_dir != root else run_dir.name, state,
            f"{step or 0}/{total or '?'}", _error(status.get("final_test_error", last.get("test_error"))),
            _error(status.get("final_train_error", last.get("train_error"))), _age(time.time() - newest),
            (status.get("error") or "")[:80]]


def main(args) -> int:
    parser = argparse.ArgumentParser(prog="resexp status", description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default="runs", metavar="DIR", help="a run, a sweep or runs/ (default)")
    opts = parser.parse_args(args)
    from .runs import find_runs
    root = Path(opts.dir)
    runs = find_runs(root)
    table = Table(title=f"runs under {root}", caption="test/train: last evaluated error in %; age: since the "
                  "run last wrote")
    for column in ("run", "state", "step", "test %", "train %", "age", "error"):
        table.add_column(column, justify="right" if column in ("step", "test %", "train %", "age") else "left",
                         overflow="fold")
    for run_dir in runs:
        table.add_row(*row(run_dir, root))
    console.print(table)
    return 0
