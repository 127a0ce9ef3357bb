"""The report's figures, drawn headless (Agg) from run directories at a fixed pixel size.

degradation.png follows He et al. 2015, Fig. 6: one panel per family, error vs iteration, training
error thin dashed, test error bold, one colour per depth (the same depth has the same colour in
every panel and every figure). A run's series is its family plus any other key swept within a family
and depth (runs.load_runs), so runs trained differently never share a panel or a line.
"""
import math
import statistics
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .stats import interval, intervals  # noqa: E402

DPI = 150
SIZE = (12, 4.5)  # inches: 1800 x 675 pixels at DPI; degradation.png adds ROW_HEIGHT per row of panels
ROW_HEIGHT = 3.5  # inches
COLUMNS = 3       # panels per row of degradation.png
PANELS = 9        # panels per degradation file: at most 1800 x 2250 pixels
TITLE_WIDTH = 45  # characters per line of a panel's title
LEGEND_WIDTH = 30  # characters per line of a legend entry
LEGEND_ENTRIES = 20  # legend entries at most; more lines are drawn but not named


def _series(runs):
    return list(dict.fromkeys(r["series"] for r in runs))


def _line_styles(runs) -> dict:
    return {name: style for name, style in zip(_series(runs), ["-", "--", ":", "-."] * len(runs))}


def _legend(fig, handles, **kwargs) -> None:
    if handles:  # a report of runs that logged nothing draws empty axes, without a legend warning
        fig.legend(handles=handles, loc="outside right upper", **kwargs)


def _depth_colours(runs) -> dict:
    depths = sorted({r["depth"] for r in runs}, key=lambda d: (0, d, "") if isinstance(d, int) else (1, 0, str(d)))
    cmap = plt.get_cmap("viridis" if len(depths) > 10 else "tab10")
    return {d: cmap(i / max(1, len(depths) - 1) if len(depths) > 10 else i) for i, d in enumerate(depths)}


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _title(text: str) -> str:
    return textwrap.fill(text, TITLE_WIDTH)


def _by_depth(runs: list[dict]) -> dict:
    """{depth: [runs]} of one series: the seeds of one configuration share a depth."""
    out = {}
    for r in runs:
        out.setdefault(r["depth"], []).append(r)
    return out


def _mean_band(ax, runs: list[dict], key: str, style: str, **line) -> None:
    """One line for the runs (the seeds of a configuration) at the steps all of them logged: their mean,
    with its 95% bootstrap interval as a band when there are several (the report's intervals, stats.py)."""
    rows = [{m["step"]: m[key] for m in r["metrics"] if m.get(key) is not None} for r in runs if r["metrics"]]
    steps = sorted(set.intersection(*(set(row) for row in rows))) if rows else []
    if not steps:
        return
    mean = [statistics.mean(row[s] for row in rows) for s in steps]
    ax.plot(steps, mean, style, marker="o" if len(steps) == 1 else None, **line)
    if len(rows) > 1:
        low, high = intervals([[row[s] for row in rows] for s in steps])
        ax.fill_between(steps, low, high, color=line["color"], alpha=0.15, linewidth=0)


def _say_why_empty(ax, runs: list[dict]) -> None:
    """A panel with no curve says why (a net that diverged at its first step logged no finite error),
    instead of an empty frame that reads like a broken figure."""
    why = [f"{r['run']}: {r['status']}" + (f" at step {r['step']}" if r.get("step") else "") for r in runs]
    ax.text(0.5, 0.5, textwrap.fill("; ".join(why) + "; no finite error logged", 30), transform=ax.transAxes,
            ha="center", va="center", fontsize="medium", color="0.3")
    ax.set_xticks([])


def degradation(runs: list[dict], path: Path) -> list[Path]:
    """He et al. 2015, Fig. 6: one panel per series, at most PANELS per file (degradation.png, then
    degradation_2.png, ...), so a report of many kinds of runs stays readable. Returns the files."""
    colours = _depth_colours(runs)
    panels = _series(runs)
    pages = [panels[i:i + PANELS] for i in range(0, len(panels), PANELS)] or [[]]
    paths = [path if n == 0 else path.with_name(f"{path.stem}_{n + 1}{path.suffix}") for n in range(len(pages))]
    for page, out in zip(pages, paths):
        rows, cols = max(1, math.ceil(len(page) / COLUMNS)), max(1, min(len(page), COLUMNS))
        fig, axes = plt.subplots(rows, cols, figsize=(SIZE[0], SIZE[1] + ROW_HEIGHT * (rows - 1)), sharey=True,
                                 squeeze=False, layout="constrained")
        for ax in axes.flat[len(page):]:
            ax.set_visible(False)
        for ax, panel in zip(axes.flat, page):
            for d, seeds in _by_depth([r for r in runs if r["series"] == panel]).items():
                _mean_band(ax, seeds, "train_error", "--", color=colours[d], linewidth=0.9, markersize=3)
                _mean_band(ax, seeds, "test_error", "-", color=colours[d], linewidth=2.2, markersize=5)
            if not ax.lines:
                _say_why_empty(ax, [r for r in runs if r["series"] == panel])
            ax.set_title(_title(panel), fontsize="medium")
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
        for row in axes:
            row[0].set_ylabel("error (%)")
        shown = {r["depth"] for r in runs if r["series"] in page}
        handles = [Line2D([], [], color=c, linewidth=2.2, label=f"{d} layers") for d, c in colours.items() if d in shown]
        handles += [Line2D([], [], color="black", linestyle="--", linewidth=0.9, label="train"),
                    Line2D([], [], color="black", linewidth=2.2, label="test")]
        _legend(fig, handles, title="depth")
        part = f" ({paths.index(out) + 1} of {len(paths)})" if len(paths) > 1 else ""
        seeds = any(len(seeds) > 1 for panel in page
                    for seeds in _by_depth([r for r in runs if r["series"] == panel]).values())
        fig.suptitle(f"Training (dashed) and test (bold) error vs iteration{part}"
                     + ("; bands: 95% interval of the mean over seeds" if seeds else ""))
        _save(fig, out)
    for stale in path.parent.glob(f"{path.stem}_*{path.suffix}"):  # pages of an earlier, larger report
        if stale not in paths:
            stale.unlink()
    return paths


def depth(runs: list[dict], path: Path) -> None:
    """Final error vs depth, mean over the finished seeds with its 95% bootstrap interval as a band (the
    report's intervals): test solid, train dashed, one colour per series."""
    fig, ax = plt.subplots(figsize=SIZE, layout="constrained")
    handles = []
    names = _series(runs)
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, name in enumerate(names):
        done = [r for r in runs if r["series"] == name and r["status"] == "finished" and isinstance(r["depth"], int)]
        depths = sorted({r["depth"] for r in done})
        if not depths:
            continue
        colour = palette(i % palette.N)
        for key, style, width in (("final_test_error", "-o", 2), ("final_train_error", "--s", 1)):
            values = [[r[key] for r in done if r["depth"] == d and r.get(key) is not None] for d in depths]
            means = [statistics.mean(v) if v else math.nan for v in values]
            ax.plot(depths, means, style, color=colour, linewidth=width, markersize=5)
            bands = [interval(v) or (m, m) for v, m in zip(values, means)]
            if any(len(v) > 1 for v in values):
                ax.fill_between(depths, [lo for lo, _ in bands], [hi for _, hi in bands],
                                color=colour, alpha=0.15, linewidth=0)
        handles.append(Line2D([], [], color=colour, marker="o", linewidth=2, label=textwrap.fill(name, LEGEND_WIDTH)))
    depths = sorted({r["depth"] for r in runs if isinstance(r["depth"], int)})
    ax.set_xticks(depths)  # the depths that were trained, not a uniform grid
    ax.set_xlim(0, max(depths, default=1) * 1.05)
    ax.set_xlabel("depth (weighted layers)")
    ax.set_ylabel("final error (%)")
    seeds = any(len(v) > 1 for name in _series(runs)
                for v in _by_depth([r for r in runs if r["series"] == name and r["status"] == "finished"]).values())
    ax.set_title("Final test (solid) and training (dashed) error vs depth"
                 + ("; mean over seeds, band: its 95% interval" if seeds else ""))
    ax.grid(alpha=0.3)
    _legend(fig, handles[:LEGEND_ENTRIES], title="series", fontsize="small")
    _save(fig, path)


def grad_norms(runs: list[dict], path: Path) -> None:
    """Per-layer gradient norm at the first, middle and last logged step, one line per run."""
    from .events import grad_norm_series  # TensorBoard's reader is imported only when this figure is drawn
    colours = _depth_colours(runs)
    styles = _line_styles(runs)
    fig, axes = plt.subplots(1, 3, figsize=SIZE, sharey=True, layout="constrained")
    picked = {}  # panel -> the steps shown there, over all runs
    first_seed = {(r["series"], r["depth"]): r for r in reversed(runs)}.values()  # one line per configuration
    for r in first_seed:
        series = grad_norm_series(r["dir"])  # {step: [norm per layer index]}
        if not series:
            continue
        steps = sorted(series)
        for i, (ax, step) in enumerate(zip(axes, (steps[0], steps[len(steps) // 2], steps[-1]))):
            norms = series[step]
            ax.plot(range(len(norms)), norms, styles[r["series"]], color=colours[r["depth"]], linewidth=1.3)
            picked.setdefault(i, set()).add(step)
    for i, (ax, title) in enumerate(zip(axes, ("first logged step", "middle of training", "last logged step"))):
        steps = picked.get(i, set())
        ax.set_title(f"{title}: iteration {steps.pop()}" if len(steps) == 1 else title)
        if picked:  # a log axis with nothing on it warns
            ax.set_yscale("log")
        ax.set_xlabel("layer index (input → output)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("gradient L2 norm of layer weights")
    handles = [Line2D([], [], color=colours[d], linestyle=styles[s], label=textwrap.fill(f"{s} {d}", LEGEND_WIDTH))
               for s in styles for d in colours if any(r["series"] == s and r["depth"] == d for r in runs)]
    _legend(fig, handles[:LEGEND_ENTRIES] if picked else [], title="family, depth", fontsize="small")
    fig.suptitle("Per-layer weight-gradient norm during training")
    _save(fig, path)


def responses(runs: list[dict], path: Path) -> bool:
    """He et al. 2015, Fig. 7: std of each layer's response, by layer index and sorted by magnitude.
    Returns False (and draws nothing) when no run logged responses."""
    from ..track.responses import read_responses
    logged = [(r, read_responses(r["dir"])) for r in runs]
    logged = [(r, resp) for r, resp in logged if resp]
    if not logged:
        return False
    colours = _depth_colours(runs)
    styles = _line_styles(runs)
    fig, (by_index, by_size) = plt.subplots(1, 2, figsize=SIZE, sharey=True, layout="constrained")
    for r, resp in logged:
        line = dict(linestyle=styles[r["series"]], color=colours[r["depth"]], linewidth=1.3,
                    label=textwrap.fill(f"{r['series']} {r['depth']}", LEGEND_WIDTH))
        by_index.plot(range(1, len(resp["std"]) + 1), resp["std"], **line)
        by_size.plot(range(1, len(resp["std"]) + 1), sorted(resp["std"], reverse=True), **line)
    by_index.set_title("by layer index")
    by_index.set_xlabel("layer index (input → output)")
    by_size.set_title("sorted by magnitude")
    by_size.set_xlabel("rank")
    by_index.set_ylabel("std of the response (after BN, before nonlinearity)")
    for ax in (by_index, by_size):
        ax.grid(alpha=0.3)
    handles = list(dict(zip(*reversed(by_index.get_legend_handles_labels()))).values())  # one per label (seeds)
    _legend(fig, handles[:LEGEND_ENTRIES], title="family, depth", fontsize="small")
    fig.suptitle("Standard deviation of layer responses on test images (He et al. 2015, Fig. 7)")
    _save(fig, path)
    return True
