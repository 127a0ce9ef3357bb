"""The report's tables: one row per configuration (mean ± std over seeds); runs.csv, one row per run, is
resexp.load_runs' table (frames.py).

The same rows go to the terminal (rich; the end-of-sweep summary and `resexp report` print the same
table), summary.md and summary.csv. Means are over the finished runs only; failed, diverged,
interrupted and running runs are counted in the status column.
"""
import csv
import re
import statistics
from collections import Counter
from pathlib import Path

from rich.table import Table

from ..names import short_key
from ..paper import FAIL, FAIL_MEANS
from ..console import console
from ..track.status import reached_step
from .runs import configurations
from .stats import interval, markdown as seeds_markdown

STYLES = {"finished": "green", "diverged": "yellow", "failed": "red", "interrupted": "magenta", "running": "cyan"}
# Columns a narrow terminal drops first, in this order; the run, family, depth, swept keys, status and the
# final errors always stay whole.
DROPPABLE = ("time s", "params", "best test %", "diff", "paper %")


def mean_std(values) -> str:
    """'7.40 ± 0.27' (sample std over the runs; final errors, never the best test epoch), one value as
    is, '-' for none."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def _std(values):
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) > 1 else None


def _intervals(done: list[dict]) -> dict:
    """test_error_ci_low, ..._high, train_error_ci_...: 95% bootstrap interval of the mean (stats.py)."""
    out = {}
    for key in ("test_error", "train_error"):
        ci = interval(r.get(f"final_{key}") for r in done)
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = ci or (None, None)
    return out


def _status(group) -> str:
    counts = Counter(r["status"] for r in group)
    if len(counts) == 1 and len(group) == 1:
        return group[0]["status"]
    return ", ".join(f"{n} {s}" for s, n in counts.most_common())


def configuration_rows(runs: list[dict]) -> tuple[list[str], list[dict]]:
    """(extra swept keys, one row per configuration) with numbers, not strings."""
    extra, groups = configurations(runs)
    rows = []
    for group in groups:
        done = [r for r in group if r["status"] == "finished"]
        first = group[0]
        test = [r.get("final_test_error") for r in done]
        paper = next((paper_error(r) for r in done if paper_error(r) is not None), None)
        mean_test = _mean(test)
        rows.append({
            "run": first["run"] if len(group) == 1 else f"{first['run']} +{len(group) - 1}",
            "family": first["family"], "depth": first["depth"], **{k: first["config"].get(k) for k in extra},
            "status": _status(group), "runs": len(group), "finished": len(done),
            "test_error_mean": mean_test, "test_error_std": _std(test),
            "train_error_mean": _mean(r.get("final_train_error") for r in done),
            "train_error_std": _std([r.get("final_train_error") for r in done]),
            **_intervals(done),
            "val_error_mean": _mean(r.get("final_val_error") for r in done),
            "best_test_error": _mean(r.get("best_test_error") for r in done),
            "parameters": next((r["parameters"] for r in group if r.get("parameters") is not None), None),
            "paper_test_error": paper,
            "paper_difference": None if paper is None or isinstance(paper, str) or mean_test is None else mean_test - paper,
            "wall_time": _mean(r.get("wall_time") for r in done),
        })
    return extra, rows


def _fmt(value, digits=2) -> str:
    if value == FAIL:
        return FAIL_MEANS
    return "-" if value is None else f"{value:.{digits}f}"


def _over_seeds(runs, key) -> str:
    values = [r.get(key) for r in runs if r["status"] == "finished" and r.get(key) is not None]
    return f"{mean_std(values)} ({len(values)})" if len(values) > 1 else mean_std(values)


def paper_error(run: dict):
    """The paper's error recorded for a run, only when the reference is for the dataset the run used."""
    dataset = run["config"].get("dataset.name")
    return run.get("paper_test_error") if run.get("paper_dataset", dataset) == dataset else None


def _cited(record: dict) -> str:
    """'6.43: He et al. 2015, Table 6, ResNet-110, cifar10, best of 5 runs (mean 6.61±0.16)'."""
    parts = [record.get("paper_source"), record.get("paper_dataset"), record.get("paper_statistic"),
             record.get("paper_note")]
    return f"{_fmt(record['paper_test_error'])}: " + ", ".join(p for p in parts if p)


def reference_lines(runs: list[dict]) -> list[str]:
    """Where each number of the paper column comes from, with its statistic: one line per distinct
    reference (and the other numbers the papers publish for the same net, after 'also')."""
    _, groups = configurations(runs)
    lines = []
    for group in groups:
        run = next((r for r in group if r["status"] == "finished" and paper_error(r) is not None), None)
        if run is None:
            continue
        line = "paper %: " + "; also ".join(_cited(record) for record in [run, *run.get("paper_also", [])])
        if line not in lines:
            lines.append(line)
    return lines


def display_rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings) for the terminal and Markdown; the val and paper columns only when
    some run has one. Swept keys are headed by their short names (act for model.activation)."""
    extra, rows = configuration_rows(runs)
    _, groups = configurations(runs)
    paper = any(r["paper_test_error"] is not None for r in rows)
    val = any(r["val_error_mean"] is not None for r in rows)
    headers = ["run", "family", "depth", *key_headers(extra), "status", "test %", "train %",
               *(["val %"] if val else []), "best test %", "params", *(["paper %", "diff"] if paper else []), "time s"]
    out = []
    for row, group in zip(rows, groups):
        out.append([row["run"], row["family"], str(row["depth"]), *("-" if row[k] is None else str(row[k]) for k in extra),
                    row["status"],
                    _over_seeds(group, "final_test_error"), _over_seeds(group, "final_train_error"),
                    *([_over_seeds(group, "final_val_error")] if val else []),
                    _fmt(row["best_test_error"]),
                    "-" if row["parameters"] is None else f"{row['parameters'] / 1e6:.2f}M",
                    *([_fmt(row["paper_test_error"]),
                       "-" if row["paper_difference"] is None else f"{row['paper_difference']:+.2f}"] if paper else []),
                    _fmt(row["wall_time"], 1)])
    return headers, out


def key_headers(keys: list[str]) -> list[str]:
    """Column heads of the swept keys: the short name (act for model.activation), a group's choice by the
    group (dataset for dataset.name), the whole key where two would read alike."""
    shorts = [k.rsplit(".", 1)[0] if k.endswith(".name") else short_key(k) for k in keys]
    return [s if shorts.count(s) == 1 else k for k, s in zip(keys, shorts)]


def short_run_names(names: list[str]) -> list[str]:
    """Each run name cut to its first part (a sweep job's number, a single run's time), or as much of it
    as keeps the names apart; the other columns say the rest."""
    for parts in range(1, max((n.count("_") + 1 for n in names), default=1) + 1):
        short = ["_".join(n.split("_")[:parts]) for n in names]
        if len(set(short)) == len(set(names)):
            return short
    return names


def settings(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Per row, `key=value` for each swept key whose value there is not the key's most common one: what
    sets the row apart, in a few words."""
    common = [Counter(row[i] for row in rows).most_common(1)[0][0] for i in range(len(headers))] if rows else []
    return [" ".join(f"{h}={v}" for h, v, c in zip(headers, row, common) if v != c) for row in rows]


def rich_table(runs: list[dict], title: str, console=None, caption=None) -> Table:
    """The summary table; on `console` it is as wide as fits, keeping the run, status and error columns
    whole: first the DROPPABLE columns go, in order; then run names are cut to their first part (the
    job number or time) and the seed counts leave the error cells (the status column has them); then
    the swept keys give way to a `set` column of letters, each explained under the table by the keys
    that are not at their most common value; last the run names are cut short (ending in …), the only
    cells that ever are."""
    headers, rows = display_rows(runs)
    first, last = 3, headers.index("status")
    extra = headers[first:last]
    narrow = [[name, *(re.sub(r" \(\d+\)$", "", cell) for cell in row[1:])]
              for name, row in zip(short_run_names([row[0] for row in rows]), rows)]
    letters = {}
    for setting in settings(extra, [row[first:last] for row in rows]):
        if setting:
            letters.setdefault(setting, chr(ord("a") + len(letters) % 26))
    lettered = [[*row[:first], *([letters.get(setting, "")] if extra else []), *row[last:]]
                for row, setting in zip(narrow, settings(extra, [row[first:last] for row in rows]))]
    lettered_headers = [*headers[:first], *(["set"] if extra else []), *headers[last:]]
    legend = "\n".join(f"{letter}: {setting}" for setting, letter in letters.items())
    keep = [h for h in headers if h not in DROPPABLE]
    lettered_keep = [h for h in lettered_headers if h not in DROPPABLE]
    tries = [(headers, rows, [h for h in headers if h not in DROPPABLE[:n]], caption) for n in range(len(DROPPABLE) + 1)]
    lettered_caption = "\n".join(c for c in (caption, legend) if c)
    tries = [(*t, False) for t in tries]
    tries += [(headers, narrow, keep, caption, False), (lettered_headers, lettered, lettered_keep, lettered_caption, False),
              (lettered_headers, lettered, lettered_keep, lettered_caption, True)]
    for heads, cells, keep, note, squeeze in tries:
        table = _table(heads, cells, keep, title, note, squeeze)
        wide = console.options.update_width(10_000) if console else None  # measure unclamped
        if console is None or console.measure(table, options=wide).maximum <= console.width:
            break
    return table


def _table(headers, rows, keep, title, caption, squeeze=False) -> Table:
    """`squeeze`: the run names may be cut short to fit (each still starts with its job number or time)."""
    table = Table(title=title, caption=caption, show_edge=False)
    for h in keep:
        whole = h not in DROPPABLE and not (squeeze and h == "run")
        width = max(len(h), *(len(row[headers.index(h)]) for row in rows)) if rows else len(h)
        table.add_column(h, justify="left" if h in ("run", "family", "status") else "right",
                         no_wrap=whole or squeeze, min_width=width if whole else None,
                         overflow="ellipsis" if squeeze and h == "run" else "fold")
    status = headers.index("status")
    for row in rows:
        style = STYLES.get(row[status], "yellow")
        table.add_row(*(f"[{style}]{cell}" if i == status else cell for i, cell in enumerate(row) if headers[i] in keep))
    return table


def print_table(runs: list[dict], title: str) -> None:
    """The table as wide as the terminal allows, then one line per run that did not finish."""
    _, groups = configurations(runs)
    over_seeds = "errors in %; mean ± std (n) over the seeds of the finished runs" if any(
        len(g) > 1 for g in groups) else None
    console.print(rich_table(runs, title, console, over_seeds))
    for line in reference_lines(runs):
        console.print(line, highlight=False, soft_wrap=True)
    for line in problems(runs):
        console.print(f"[red]{line}", highlight=False, soft_wrap=True)


def problems(runs: list[dict]) -> list[str]:
    """One line per run that did not finish: where it is and why."""
    lines = []
    for r in runs:
        if r["status"] != "finished":
            total = r.get("total_steps")
            why = r.get("error") or f"at step {reached_step(r, r['metrics'])}" + (f" of {total}" if total else "")
            lines.append(f"{r['dir']}: {r['status']}" + (f" ({why})" if why else ""))
    return lines


def write_markdown(runs: list[dict], path: Path, title: str) -> None:
    headers, rows = display_rows(runs)
    lines = [f"# {title}", "", "Final errors in %, mean ± std (n) over seeds of the finished runs.", "",
             "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    cited = reference_lines(runs)
    if cited:
        lines += ["", *(f"- {line}" for line in cited)]
    lines += seeds_markdown(runs)
    issues = problems(runs)
    if issues:
        lines += ["", "## Runs that did not finish", "", *(f"- {line}" for line in issues)]
    path.write_text("\n".join(lines) + "\n")


def _write_csv(path: Path, fields, rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def write_csv(runs: list[dict], path: Path) -> None:
    """summary.csv: one row per configuration, raw numbers (errors in %, seconds, parameter count)."""
    _, rows = configuration_rows(runs)
    _write_csv(path, list(rows[0]), rows)


def write_differences(runs: list[dict], path: Path) -> None:
    """differences.csv: one row per compared pair of configurations and error (stats.py), raw numbers."""
    from .stats import configurations as seeded, difference_records
    fields = ["change", "baseline", "error", "difference", "ci_low", "ci_high", "p", "test", "seeds_change",
              "seeds_baseline", "seeds_needed"]
    _write_csv(path, fields, difference_records(seeded(runs)))
