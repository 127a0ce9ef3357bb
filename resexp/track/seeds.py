"""Mean ± std over seeds: the jobs of a sweep that differ only in `seed`, one line per configuration.

Errors are each run's final ones (the numbers a paper reports), never the best epoch on the test set.
"""
import statistics
from pathlib import Path

from omegaconf import OmegaConf
from rich.table import Table


def _overrides_but_seed(run_dir: Path) -> tuple:
    path = run_dir / "overrides.yaml"
    overrides = OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else [run_dir.name]
    return tuple(o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "seed")


def mean_std(values) -> str:
    """'7.40 ± 0.27' (sample std over the runs), one value as is, '-' for none."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def seed_table(sweep_dir: Path, rows: list[dict]) -> Table | None:
    """A table over seeds for a sweep with several seeds per configuration; None when it has none."""
    groups = {}
    for r in rows:
        groups.setdefault(_overrides_but_seed(Path(sweep_dir) / r["run"]), []).append(r)
    if all(len(g) < 2 for g in groups.values()):
        return None
    common = set.intersection(*(set(k) for k in groups))
    table = Table(title="over seeds: mean ± std of the final errors")
    for name in ("configuration", "seeds", "test err %", "val err %", "train err %", "paper %"):
        table.add_column(name, justify="left" if name == "configuration" else "right")
    for key, group in groups.items():
        done = [r for r in group if r["status"] == "finished"]
        tag = group[0]["run"].split("_", 1)[-1]
        varying = " ".join(o for o in key if o not in common and not o.startswith(("net=", "model=", "depth=")))
        paper = next((r["paper_test_error"] for r in done if r.get("paper_test_error") is not None), None)
        table.add_row(f"{tag} {varying}".strip(), f"{len(done)}/{len(group)}",
                      mean_std(r.get("final_test_error") for r in done),
                      mean_std(r.get("final_val_error") for r in done),
                      mean_std(r.get("final_train_error") for r in done),
                      "-" if paper is None else f"{paper:.2f}")
    return table
