"""Summary tables of finished runs, read back from their run directories."""
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf
from rich.table import Table

from .progress import console
from .status import CONFIG_FILE, STATUS_FILE, read_status

STYLES = {"finished": "green", "diverged": "yellow", "failed": "red", "interrupted": "magenta", "running": "cyan"}


def _pct(value) -> str:
    return "-" if value is None else value if isinstance(value, str) else f"{value:.2f}"  # str: paper.FAIL


def run_row(run_dir: Path) -> dict:
    """What a summary shows of one run: its config labels and status file."""
    status = read_status(run_dir) or {"status": "failed", "error": "no status file"}
    config_path = run_dir / CONFIG_FILE
    cfg = OmegaConf.load(config_path) if config_path.exists() else None
    return {"run": run_dir.name, **status,
            "model": cfg.model.name if cfg else "?", "depth": cfg.depth if cfg else "?",
            "shortcut": cfg.model.shortcut if cfg else "?"}


def _millions(value) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}M"


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.1f}"


# (header, status key, format, shown only when some run has the key)
COLUMNS = (
    ("test err %", "final_test_error", _pct, False),
    ("best test err %", "best_test_error", _pct, False),
    ("train err %", "final_train_error", _pct, False),
    ("val err %", "final_val_error", _pct, True),
    ("paper %", "paper_test_error", _pct, True),  # the paper's number: resexp/paper.py
    ("params", "parameters", _millions, False),
    ("time s", "wall_time", _seconds, False),
)


def summary_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    columns = [c for c in COLUMNS if not c[3] or any(r.get(c[1]) is not None for r in rows)]
    for header, *_ in columns:
        table.add_column(header, justify="right")
    for r in rows:
        table.add_row(r["run"], f"[{STYLES.get(r['status'], 'white')}]{r['status']}",
                      *(fmt(r.get(key)) for _, key, fmt, _ in columns))
    return table


def sweep_rows(sweep_dir: Path) -> list[dict]:
    """Rows for every job directory of a sweep, in job order."""
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and (p / CONFIG_FILE).exists()
            or (p / STATUS_FILE).exists()]
    jobs.sort(key=lambda p: (int(p.name.split("_")[0]) if p.name.split("_")[0].isdigit() else 1 << 30, p.name))
    return [run_row(p) for p in jobs]


class SweepSummary(Callback):
    """At the end of a multirun, one table of all its jobs; remembers how many did not finish."""

    unfinished = 0

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = sweep_rows(sweep_dir)
        console.print(summary_table(rows, f"sweep {sweep_dir}"))
        from ..report.runs import configurations, load_runs  # the report's grouping, one definition
        from ..report.tables import rich_table
        runs = load_runs([sweep_dir])
        if any(len(group) > 1 for group in configurations(runs)[1]):
            console.print(rich_table(runs, "over seeds: mean ± std (n) of the final errors"))
        for r in rows:
            if r.get("error"):
                console.print(f"[red]{r['run']}: {r['error']}")
        SweepSummary.unfinished = sum(r["status"] != "finished" for r in rows)
        from .logger import write_sweep_layout  # torch is imported only once a sweep has run
        write_sweep_layout(sweep_dir)
