"""Statistics over seeds: is a difference between two configurations larger than the seeds' spread?

Each configuration's final error gets a 95% bootstrap interval of its mean over seeds; two configurations
that differ in one key (depth, family, shortcut, activation, ...) get the difference of their means with
its bootstrap interval and a t-test: paired when both ran the same seeds (a seed fixes the initial
weights, the data order and the augmentation draws, so seed s of one is the fair partner of seed s of
the other), Welch's otherwise. Where the seeds leave the sign open (the interval crosses zero, or p is
0.05 or more), a power estimate from the measured spread says how many seeds the difference would
need. The report's tables, its verdict lines and the figures' bands all come from here (scipy.stats:
bootstrap, ttest_rel, ttest_ind, t, nct).
"""
import math
import textwrap
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from .runs import configurations as runs_configurations

CONFIDENCE = 0.95  # of every interval
RESAMPLES = 10_000  # bootstrap resamples (percentile method)
BOOTSTRAP_SEED = 0  # the same runs give the same intervals in every report and figure
ALPHA, POWER = 0.05, 0.8  # the power estimate: a two-sided t-test at p < 0.05 finding the difference 80% of the time
MAX_SEEDS = 1000  # the power estimate looks no further
CHUNK = 4_000_000  # resampled values held at once (32 MB): a curve's steps are bootstrapped in pieces


def _finite(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def interval(values) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the mean of `values` (the seeds' final errors); None for fewer
    than two values: one seed says nothing about the spread."""
    values = _finite(values)
    if len(values) < 2:
        return None
    low, high = intervals(values[None, :])
    return float(low[0]), float(high[0])


def intervals(matrix) -> tuple[np.ndarray, np.ndarray]:
    """The same interval for each row of a (points x seeds) array at once (a curve's seeds at each step):
    every row is resampled with the same draws, so a row gets what `interval` gives it alone."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[-1] < 2:
        raise ValueError("an interval needs two seeds or more")
    if np.all(np.ptp(matrix, axis=-1) == 0):  # no spread anywhere: nothing to resample
        return matrix[:, 0].copy(), matrix[:, 0].copy()
    rows = max(1, CHUNK // (RESAMPLES * matrix.shape[-1]))  # a long curve in pieces, each with the same draws
    low, high = [], []
    for start in range(0, len(matrix), rows):
        ci = stats.bootstrap((matrix[start:start + rows],), np.mean, axis=-1, confidence_level=CONFIDENCE,
                             n_resamples=RESAMPLES, method="percentile",
                             rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
        low.append(np.atleast_1d(ci.low))
        high.append(np.atleast_1d(ci.high))
    return np.concatenate(low), np.concatenate(high)


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) in error points, with what the seeds say about it."""
    mean: float
    seeds: tuple[int, int]  # finished seeds on each side
    paired: bool            # matched by seed (paired t-test), else Welch's t-test
    low: float | None = None   # 95% bootstrap interval of the difference; None with one seed a side
    high: float | None = None
    p: float | None = None     # two-sided t-test; None with one seed a side, or no spread at all
    needed: int | None = None  # seeds each side needs (power estimate), where `unclear`

    @property
    def crosses_zero(self) -> bool:
        return self.low is not None and self.low <= 0 <= self.high

    @property
    def unclear(self) -> bool:
        """The seeds do not settle the sign: the interval crosses zero, or the test finds p >= ALPHA (with
        few seeds the bootstrap interval is the narrower of the two: docs/reports.md)."""
        return self.crosses_zero or (self.p is not None and self.p >= ALPHA)


def difference(a, b, paired: bool = False) -> Difference:
    """a - b for two configurations' final errors, one value per seed; `paired`: a[i] and b[i] ran the
    same seed (then a and b have the same length)."""
    a, b = _finite(a), _finite(b)
    mean = float(a.mean() - b.mean())
    seeds = (len(a), len(b))
    if paired and len(a) != len(b):
        raise ValueError("a paired difference needs one value per seed on both sides")
    if min(seeds) < 2:
        return Difference(mean, seeds, paired)
    if paired:
        low, high = interval(a - b)
        spreads = (float(np.std(a - b, ddof=1)),)  # of the per-seed differences
        p = float(stats.ttest_rel(a, b).pvalue) if spreads[0] > 0 else None
    else:
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            low = high = mean
        else:
            ci = stats.bootstrap((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                 confidence_level=CONFIDENCE, n_resamples=RESAMPLES, method="percentile",
                                 rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
            low, high = float(ci.low), float(ci.high)
        spreads = float(np.std(a, ddof=1)), float(np.std(b, ddof=1))
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue) if any(spreads) else None
    found = Difference(mean, seeds, paired, low, high, p)
    return replace(found, needed=seeds_needed(mean, *spreads)) if found.unclear else found


def seeds_needed(effect: float, spread: float, other_spread: float | None = None) -> int | None:
    """Seeds per side for a two-sided t-test at ALPHA to find a true difference `effect` with probability
    POWER (the noncentral t distribution): paired when `other_spread` is None (`spread`: the std of the
    per-seed differences), else Welch's test with these two stds and as many seeds on each side. None when
    MAX_SEEDS do not suffice (an effect of zero never does)."""
    n = np.arange(2, MAX_SEEDS + 1, dtype=float)
    if other_spread is None:
        df, error = n - 1, np.sqrt(spread ** 2 / n)
    else:
        va, vb = spread ** 2 / n, other_spread ** 2 / n
        error = np.sqrt(va + vb)
        df = (va + vb) ** 2 / np.maximum((va ** 2 + vb ** 2) / (n - 1), 1e-300)  # Welch-Satterthwaite
    if not np.all(error > 0):
        return None if effect == 0 else 2
    shift = abs(effect) / error
    critical = stats.t.ppf(1 - ALPHA / 2, df)
    power = stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)
    enough = np.flatnonzero(power >= POWER)
    return int(n[enough[0]]) if len(enough) else None


def p_text(p: float | None) -> str:
    """'p < 0.001', 'p = 0.034', 'p = 0.31'; without a test (every seed alike on both sides), why not."""
    if p is None:
        return "no spread, no test"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def interval_text(low, high) -> str:
    return "-" if low is None else f"[{low:.2f}, {high:.2f}]"


def seeds_text(d: Difference) -> str:
    """'3 seeds each, paired', '3 and 2 seeds, Welch', '1 seed each'."""
    a, b = d.seeds
    counts = f"{a} seed{'s' * (a != 1)} each" if a == b else f"{a} and {b} seeds"
    if min(d.seeds) < 2:
        return counts
    return f"{counts}, {'paired' if d.paired else 'Welch'}"


def verdict(change: str, baseline: str, what: str, d: Difference) -> list[str]:
    """'plain56 - plain20 train error: +41.90 points [38.00, 45.70], p < 0.001 (3 seeds each, paired)',
    with one seed a side, that no interval can be given; where the seeds leave the sign open (`unclear`), a
    second line with the seeds the difference would need."""
    head = f"{change} - {baseline} {what}: {d.mean:+.2f} points"
    if min(d.seeds) < 2:
        return [f"{head} ({seeds_text(d)}: no interval can be given)"]
    lines = [f"{head} {interval_text(d.low, d.high)}, {p_text(d.p)} ({seeds_text(d)})"]
    if d.unclear:
        why = "the interval crosses zero" if d.crosses_zero else f"p >= {ALPHA}"
        need = f"about {d.needed} seeds each" if d.needed else f"more than {MAX_SEEDS} seeds each"
        lines.append(f"  {why}: a true difference of {abs(d.mean):.2f} points would need {need}"
                     f" ({POWER:.0%} power at p < {ALPHA})")
    return lines


# Which configurations a report compares, and its verdict lines.

ERRORS = (("final_test_error", "test error"), ("final_train_error", "train error"))


@dataclass
class Configuration:
    """The finished seeds of one configuration (runs.configurations) and where it sits in the sweep."""
    label: str     # the net's name and any swept key off its usual value: 'resnet56-A', 'plain20 act=tanh'
    place: dict    # 'family', 'depth' and each other swept key -> its value (repr)
    runs: list     # the finished runs

    def values(self, key: str) -> list:
        return [r.get(key) for r in self.runs]

    @property
    def seeds(self) -> list:
        return [r["config"].get("seed") for r in self.runs]


def configurations(runs: list[dict]) -> list[Configuration]:
    """Every configuration with a finished run, in the report's order."""
    from ..models import label
    extra, found = runs_configurations(runs)
    out = []
    for group in found:
        done = [r for r in group if r["status"] == "finished"]
        if not done:
            continue
        first = done[0]
        options = {k.removeprefix("model."): v for k, v in first["config"].items() if k.startswith("model.")}
        net = label(str(first["config"].get("model.name", "?")), first["depth"], options)
        place = {"family": first["family"], "depth": first["depth"],
                 **{k: repr(first["config"].get(k)) for k in extra}}
        out.append(Configuration(net + first["series"][len(first["family"]):], place, done))
    return out


def _paired(change: Configuration, baseline: Configuration) -> bool:
    """Both sides ran the same seeds, each once."""
    a, b = change.seeds, baseline.seeds
    return None not in a and len(set(a)) == len(a) and sorted(a) == sorted(b)


def compare(change: Configuration, baseline: Configuration, key: str) -> Difference:
    """change - baseline of one error key, paired by seed when both ran the same seeds."""
    if _paired(change, baseline):
        by_seed = {r["config"].get("seed"): r.get(key) for r in baseline.runs}
        pairs = [(r.get(key), by_seed[r["config"].get("seed")]) for r in change.runs]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        return difference([x for x, _ in pairs], [y for _, y in pairs], paired=True)
    return difference(change.values(key), baseline.values(key))


def pairs(configs: list[Configuration]) -> list[tuple[Configuration, Configuration]]:
    """(change, baseline) for configurations that differ in one key: a depth and the next shallower one
    with everything else the same; any other key (family, activation, ...) against the value the first
    configuration has (the report orders the usual value first)."""
    if not configs:
        return []
    keys = list(configs[0].place)
    reference = configs[0].place
    out = []
    for i, a in enumerate(configs):
        for b in configs[i + 1:]:
            differ = [k for k in keys if a.place[k] != b.place[k]]
            if len(differ) != 1:
                continue
            key = differ[0]
            if key == "depth":
                if not all(isinstance(c.place["depth"], int) for c in (a, b)):
                    continue
                deep, shallow = (a, b) if a.place["depth"] > b.place["depth"] else (b, a)
                between = [c for c in configs if all(c.place[k] == a.place[k] for k in keys if k != "depth")
                           and isinstance(c.place["depth"], int)
                           and shallow.place["depth"] < c.place["depth"] < deep.place["depth"]]
                if not between:
                    out.append((deep, shallow))
            elif reference[key] in (a.place[key], b.place[key]):
                out.append((b, a) if a.place[key] == reference[key] else (a, b))
    return out


def verdict_pairs(configs: list[Configuration]) -> list[tuple[Configuration, Configuration]]:
    """The pairs that answer a depth study's question: within each series, its deepest net against the
    next shallower one (does depth degrade training?); at the deepest depth compared across other keys,
    each change against its baseline (does a shortcut, an activation, ... fix it?)."""
    found = pairs(configs)
    depth_pairs = []
    for change, baseline in found:
        if change.place["depth"] != baseline.place["depth"]:
            same = [c for c in configs if all(c.place[k] == change.place[k] for k in change.place if k != "depth")]
            if change.place["depth"] == max(c.place["depth"] for c in same if isinstance(c.place["depth"], int)):
                depth_pairs.append((change, baseline))
    across = [(c, b) for c, b in found if c.place["depth"] == b.place["depth"]]
    deepest = max((c.place["depth"] for c, _ in across if isinstance(c.place["depth"], int)), default=None)
    return depth_pairs + [(c, b) for c, b in across if c.place["depth"] == deepest]


def verdicts(runs: list[dict]) -> list[str]:
    """The report's verdict lines: training error, the error the degradation problem is about (test error
    where a run recorded no training error)."""
    lines = []
    for change, baseline in verdict_pairs(configurations(runs)):
        key, what = ERRORS[1] if None not in change.values(ERRORS[1][0]) + baseline.values(ERRORS[1][0]) else ERRORS[0]
        lines += verdict(change.label, baseline.label, what, compare(change, baseline, key))
    return lines


# The same numbers as text: the terminal, summary.md and differences.csv.

ONE_SEED = "one seed per configuration: no interval can be given (train several, e.g. seed=0,1,2)"
INTERVALS_TITLE = "Final error over seeds, %: mean [95% bootstrap interval]"
FEW_SEEDS = 10  # below this many seeds a configuration's interval gets the note below (docs/reports.md)
COVERAGE = ("with fewer than 10 seeds a bootstrap interval covers less than 95% (about 75% at 3 seeds, 84% at 5, "
            "for normal data); the t-tests allow for few seeds")
DIFFERENCES_TITLE = ("Differences, change - baseline, in points: 95% bootstrap interval; a paired t-test where both "
                     "ran the same seeds, else Welch's")


def _mean_interval(values) -> str:
    values = _finite(values)
    if not len(values):
        return "-"
    ci = interval(values)
    return f"{values.mean():.2f}" + (f" {interval_text(*ci)}" if ci else "")


def interval_rows(configs: list[Configuration]) -> tuple[list[str], list[list[str]]]:
    headers = ["configuration", "seeds", *(f"{what.split()[0]} %" for _, what in ERRORS)]
    return headers, [[c.label, str(len(c.runs)), *(_mean_interval(c.values(key)) for key, _ in ERRORS)]
                     for c in configs]


def compared(configs: list[Configuration]) -> list[tuple[Configuration, Configuration, list]]:
    """(change, baseline, [(error name, Difference)]) for every compared pair (`pairs`)."""
    out = []
    for change, baseline in pairs(configs):
        found = [(what, compare(change, baseline, key)) for key, what in ERRORS
                 if None not in change.values(key) + baseline.values(key)]
        if found:
            out.append((change, baseline, found))
    return out


def difference_records(configs: list[Configuration]) -> list[dict]:
    """One record per compared pair and error, raw numbers (differences.csv)."""
    return [{"change": change.label, "baseline": baseline.label, "error": what.split()[0], "difference": d.mean,
             "ci_low": d.low, "ci_high": d.high, "p": d.p,
             "test": None if d.p is None else "paired" if d.paired else "welch",
             "seeds_change": d.seeds[0], "seeds_baseline": d.seeds[1], "seeds_needed": d.needed}
            for change, baseline, found in compared(configs) for what, d in found]


def difference_lines(configs: list[Configuration]) -> list[str]:
    """'plain20 - plain8 (3 seeds each, paired)', then '  test error   +7.17 [5.86, 8.73]  p = 0.013' and
    the training error's line."""
    lines = []
    for change, baseline, found in compared(configs):
        lines.append(f"{change.label} - {baseline.label} ({seeds_text(found[0][1])})")
        for what, d in found:
            tested = f"  {p_text(d.p)}" if min(d.seeds) > 1 else ""
            lines.append(f"  {what:<12}{d.mean:+7.2f} {interval_text(d.low, d.high):>17}{tested}")
    return lines


def several_seeds(configs: list[Configuration]) -> bool:
    return any(len(c.runs) > 1 for c in configs)


def _few_seeds(configs: list[Configuration]) -> bool:
    return any(1 < len(c.runs) < FEW_SEEDS for c in configs)


def print_statistics(runs: list[dict], console) -> None:
    """Below the summary table: each configuration's interval, the differences and the verdict lines,
    wrapped to the terminal; with one seed per configuration, that no interval can be given."""
    from rich.table import Table
    configs = configurations(runs)
    if not configs:
        return

    def say(text: str, indent: str = "") -> None:
        console.print(textwrap.fill(text, max(console.width, 40), initial_indent=indent, break_on_hyphens=False,
                                    subsequent_indent=indent + "    "), highlight=False, soft_wrap=True)

    if several_seeds(configs):
        headers, rows = interval_rows(configs)
        table = Table(title=INTERVALS_TITLE, show_edge=False)
        for h in headers:
            table.add_column(h, justify="left" if h == headers[0] else "right", no_wrap=h != headers[0])
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if _few_seeds(configs):
            say(COVERAGE)
        lines = difference_lines(configs)
        if lines:
            console.print()
            say(DIFFERENCES_TITLE)
            for line in lines:
                say(line.strip(), "  " if line.startswith(" ") else "")
    else:
        say(ONE_SEED)
    lines = verdicts(runs)
    if lines:
        console.print()
        console.print("verdict:", highlight=False)
        for line in lines:
            say(line.strip(), "    " if line.startswith(" ") else "  ")


def markdown(runs: list[dict]) -> list[str]:
    """summary.md's section on the seeds: the verdict lines, the intervals and the differences."""
    configs = configurations(runs)
    if not configs:
        return []
    out = ["", "## Over seeds", ""]
    if not several_seeds(configs):
        out += [ONE_SEED[0].upper() + ONE_SEED[1:] + ".", ""]
    lines = verdicts(runs)
    if lines:
        out += ["Verdict:", "", "```", *lines, "```"]
    if several_seeds(configs):
        headers, rows = interval_rows(configs)
        out += ["", f"{INTERVALS_TITLE}.", "", "| " + " | ".join(headers) + " |",
                "|" + "|".join("---" for _ in headers) + "|", *("| " + " | ".join(row) + " |" for row in rows)]
        if _few_seeds(configs):
            out += ["", COVERAGE[0].upper() + COVERAGE[1:] + "."]
        differences = difference_lines(configs)
        if differences:
            out += ["", f"{DIFFERENCES_TITLE}.", "", "```", *differences, "```"]
    return out
