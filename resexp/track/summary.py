"""Summary tables of finished runs, read back from their run directories."""
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf
from rich.table import Table

from .progress import console
from .seeds import seed_table
from .status import STATUS_FILE, read_status

STYLES = {"finished": "green", "diverged": "yellow", "failed": "red", "interrupted": "magenta", "running": "cyan"}


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_row(run_dir: Path) -> dict:
    """What a summary shows of one run: its config labels and status file."""
    status = read_status(run_dir) or {"status": "failed", "error": "no status file"}
    config_path = run_dir / "config.yaml"
    cfg = OmegaConf.load(config_path) if config_path.exists() else None
    return {"run": run_dir.name, **status,
            "model": cfg.model.name if cfg else "?", "depth": cfg.depth if cfg else "?",
            "shortcut": cfg.model.shortcut if cfg else "?"}


def summary_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for name in ("run", "status", "test err %", "best test err %", "train err %", "val err %", "paper %",
                 "params", "time s"):
        table.add_column(name, justify="left" if name in ("run", "status") else "right", no_wrap=name == "run")
    for r in rows:
        params = r.get("parameters")
        table.add_row(
            r["run"], f"[{STYLES.get(r['status'], 'white')}]{r['status']}",
            _pct(r.get("final_test_error")), _pct(r.get("best_test_error")), _pct(r.get("final_train_error")),
            _pct(r.get("final_val_error")), _pct(r.get("paper_test_error")),  # paper: resexp/paper.py
            "-" if params is None else f"{params / 1e6:.2f}M",
            "-" if r.get("wall_time") is None else f"{r['wall_time']:.1f}",
        )
    return table


def sweep_rows(sweep_dir: Path) -> list[dict]:
    """Rows for every job directory of a sweep, in job order."""
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and (p / "config.yaml").exists()
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
        over_seeds = seed_table(sweep_dir, rows)
        if over_seeds is not None:
            console.print(over_seeds)
        for r in rows:
            if r.get("error"):
                console.print(f"[red]{r['run']}: {r['error']}")
        SweepSummary.unfinished = sum(r["status"] != "finished" for r in rows)
