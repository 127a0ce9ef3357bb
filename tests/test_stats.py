"""Statistics over seeds (resexp/report/stats.py) against hand-computed cases, and the verdict lines of
`resexp compare` (the report's tables and lines, without its figures) on run directories written by
hand; tests/test_report.py runs `resexp report` itself."""
import csv
import json
import math

import numpy as np
import pytest

from resexp.cli import main
from resexp.report import stats
from resexp.report.runs import load_runs


def fake_run(root, name, model, depth, seed, train, test, metrics=(), **options):
    """A finished run directory as training leaves it, holding only what a report reads; `options`: the
    model keys beside its name."""
    run = root / name
    run.mkdir(parents=True)
    options = {"activation": "relu", **({"shortcut": "A"} if model == "resnet" else {}), **options}
    keys = "".join(f"\n  {key}: {value}" for key, value in options.items())
    (run / "config.yaml").write_text(f"model:\n  name: {model}{keys}\ndepth: {depth}\nseed: {seed}\n")
    (run / "status.json").write_text(json.dumps({"status": "finished", "final_train_error": train,
                                                 "final_test_error": test}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics))
    return run


def _t_two_sided(t: float, df: float) -> float:
    """P(|T| > |t|) for Student's t with df degrees of freedom: its density integrated by Simpson's rule."""
    norm = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    density = lambda x: norm * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    n, top = 2000, abs(t)
    h = top / n
    area = density(0) + density(top) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, n))
    return 1 - 2 * area * h / 3


def test_welch_t_and_p_as_computed_by_hand():
    """Welch: t = (ma - mb) / sqrt(va/na + vb/nb), Welch-Satterthwaite degrees of freedom."""
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    va, vb = 5 / 3 / 4, 10 / 5  # sample variances 5/3 and 10 over the counts
    t = (2.5 - 6.0) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 4)
    assert t == pytest.approx(-2.2514, abs=1e-4) and df == pytest.approx(5.5208, abs=1e-4)
    d = stats.difference(a, b)
    assert not d.paired and d.mean == pytest.approx(-3.5) and d.seeds == (4, 5)
    assert d.p == pytest.approx(_t_two_sided(t, df), abs=1e-6)
    # Two seeds a side, equal spread: df = 2, where P(|T| > t) = 1 - t / sqrt(2 + t^2) in closed form.
    t = 3 / math.sqrt(2)
    assert stats.difference([3.0, 5.0], [0.0, 2.0]).p == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-9)


def test_paired_t_as_computed_by_hand():
    """Differences 2, 1, 4: mean 7/3, std sqrt(7/3), so t = sqrt(7) on 2 degrees of freedom and
    p = 1 - sqrt(7) / 3; unpaired, the same numbers are far from significant."""
    a, b = [10.0, 12.0, 15.0], [8.0, 11.0, 11.0]
    d = stats.difference(a, b, paired=True)
    assert d.paired and d.mean == pytest.approx(7 / 3)
    assert d.p == pytest.approx(1 - math.sqrt(7) / 3, abs=1e-9)
    assert stats.difference(a, b).p > 0.2  # 0.26


def test_bootstrap_interval_is_the_percentile_interval_of_resampled_means():
    """The same draws made by hand (rng.integers, one row of indices per resample), the means' 2.5th and
    97.5th percentiles: what stats.interval gives; two seeds a side for the difference."""
    x = np.array([3.1, 4.7, 5.0, 6.2, 8.4])
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    means = x[rng.integers(0, len(x), (stats.RESAMPLES, len(x)))].mean(axis=1)
    assert stats.interval(x) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-12)
    a, b = np.array([5.0, 6.0, 7.5]), np.array([1.0, 2.0, 2.2, 4.0])
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    resampled_a = a[rng.integers(0, len(a), (stats.RESAMPLES, len(a)))].mean(axis=1)
    resampled_b = b[rng.integers(0, len(b), (stats.RESAMPLES, len(b)))].mean(axis=1)
    d = stats.difference(a, b)
    assert (d.low, d.high) == pytest.approx(tuple(np.percentile(resampled_a - resampled_b, [2.5, 97.5])), abs=1e-12)


def test_bootstrap_interval_of_two_and_three_seeds_exactly():
    """Two seeds a and b: resampled means are a, (a+b)/2, b with chances 1/4, 1/2, 1/4, so the 2.5th and
    97.5th percentiles are a and b. Three seeds 75, 76, 77: a mean of 75 has chance 1/27 > 2.5%, one of
    77 too, so the interval is [75, 77]."""
    assert stats.interval([4.0, 9.0]) == (4.0, 9.0)
    assert stats.interval([76.0, 75.0, 77.0]) == (75.0, 77.0)
    assert stats.interval([3.0]) is None and stats.interval([]) is None
    assert stats.interval([2.5, 2.5, 2.5]) == (2.5, 2.5)  # no spread: nothing to resample


@pytest.mark.parametrize("rows_at_once", [3, 2, 1])
def test_intervals_of_a_curve_match_each_point_alone(monkeypatch, rows_at_once):
    """However many steps of a curve are resampled at once (a long curve goes in pieces)."""
    matrix = np.array([[1.0, 2.0, 4.0, 7.0, 3.0], [10.0, 12.0, 11.0, 15.0, 9.5], [5.0, 5.0, 5.0, 5.0, 5.0],
                       [0.1, 0.4, 0.2, 0.9, 0.3]])
    monkeypatch.setattr(stats, "CHUNK", rows_at_once * stats.RESAMPLES * matrix.shape[1])
    low, high = stats.intervals(matrix)
    assert len(low) == len(high) == len(matrix)
    for row, lo, hi in zip(matrix, low, high):
        assert stats.interval(row) == pytest.approx((lo, hi), abs=1e-12)


@pytest.mark.parametrize("effect, paired, seeds", [(0.5, False, 64), (0.8, False, 26), (1.0, False, 17),
                                                   (0.5, True, 34), (0.8, True, 15)])
def test_seeds_needed_matches_the_power_tables(effect, paired, seeds):
    """Seeds per side for 80% power at p < 0.05, two-sided, standardized effect: Cohen (1988), Table 2.4.1
    (64, 26, 17 per group); G*Power's paired t-test (34 and 15 pairs)."""
    assert stats.seeds_needed(effect, 1.0, None if paired else 1.0) == seeds
    assert stats.seeds_needed(10 * effect, 10.0, None if paired else 10.0) == seeds  # in any unit
    assert stats.seeds_needed(0.0, 1.0, 1.0) is None


def _degradation(root, plain56=(80.0, 82.0, 84.0), resnet56=(1.0, 3.0, 2.0), seeds=(0, 1, 2)):
    """Plain and resnet at depths 20 and 56: train errors plain20 5, 6, 7 and resnet20 2, 1, 3 by seed."""
    values = {("plain", 20): (5.0, 6.0, 7.0), ("plain", 56): plain56, ("resnet", 20): (2.0, 1.0, 3.0),
              ("resnet", 56): resnet56}
    job = 0
    for (model, depth), train in values.items():
        for seed, error in zip(seeds, train):
            fake_run(root, f"{job}_{model}{depth}_seed={seed}", model, depth, seed, error, error + 1)
            job += 1
    return root


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_report_prints_the_verdict_lines(tmp_path, capsys):
    """Paired by seed: plain56 - plain20 = 75, 76, 77 (interval [75, 77] as above, t = 76 sqrt(3));
    resnet56-A - resnet20-A = -1, 2, -1 crosses zero: the seeds it needs come from the spread of those
    differences."""
    root = _degradation(tmp_path / "sweep")
    assert main(["compare", str(root), "--out", str(root / "report")]) == 0  # report's tables, no figures
    out = _flat(capsys.readouterr().out)
    lines = stats.verdicts(load_runs([root]))
    assert lines[0] == "plain56 - plain20 train error: +76.00 points [75.00, 77.00], p < 0.001 (3 seeds each, paired)"
    assert lines[1].startswith("resnet56-A - resnet20-A train error: +0.00 points [-1.00, 2.00], p = 1")
    needed = stats.seeds_needed(0.0, float(np.std([-1, 2, -1], ddof=1)))
    assert needed is None and lines[2] == ("  the interval crosses zero: a true difference of 0.00 points would need"
                                           " more than 1000 seeds each (80% power at p < 0.05)")
    assert lines[3].startswith("resnet56-A - plain56 train error: -80.00 points")
    assert len(lines) == 4
    for line in lines:
        assert _flat(line) in out
    summary = (root / "report" / "summary.md").read_text()
    assert "\n".join(lines) in summary and "| plain20 | 3 | 7.00 [6.00, 8.00] | 6.00 [5.00, 7.00] |" in summary
    with open(root / "report" / "differences.csv") as f:
        rows = {(r["change"], r["baseline"], r["error"]): r for r in csv.DictReader(f)}
    assert len(rows) == 2 * 4  # two errors each for plain56 - plain20, resnet56 - resnet20 and two family pairs
    row = rows["plain56", "plain20", "train"]
    assert float(row["difference"]) == 76.0 and row["test"] == "paired" and row["seeds_needed"] == ""


def test_a_difference_that_needs_more_seeds_says_how_many(tmp_path):
    """resnet56 0.5, 1.0, 0.5 above resnet20 by seed: t = 4 on 2 degrees of freedom, p = 1 - 4/sqrt(18)
    = 0.057. A paired t-test of a true difference 2/3 with that spread finds it in 56% of draws of 3 seeds
    and 85% of draws of 4 (200,000 simulated draws each): 4 seeds."""
    root = _degradation(tmp_path / "sweep", resnet56=(2.5, 2.0, 3.5))
    lines = stats.verdicts(load_runs([root]))
    spread = float(np.std([0.5, 1.0, 0.5], ddof=1))
    d = stats.difference([2.5, 2.0, 3.5], [2.0, 1.0, 3.0], paired=True)
    assert not d.crosses_zero and d.p == pytest.approx(1 - 4 / math.sqrt(18)) and d.p >= 0.05
    assert d.needed == stats.seeds_needed(2 / 3, spread) == 4
    assert lines[2] == ("  p >= 0.05: a true difference of 0.67 points would need about 4 seeds each "
                        "(80% power at p < 0.05)")


def test_other_seeds_give_welch(tmp_path):
    """resnet56 ran seeds 3, 4, 5: no seed to pair with, so Welch's test."""
    root = _degradation(tmp_path / "sweep")
    for job, seed in zip(range(9, 12), (3, 4, 5)):
        run = next(root.glob(f"{job}_resnet56_*"))
        (run / "config.yaml").write_text((run / "config.yaml").read_text().replace(f"seed: {job - 9}", f"seed: {seed}"))
    lines = stats.verdicts(load_runs([root]))
    d = stats.difference([1.0, 3.0, 2.0], [2.0, 1.0, 3.0])
    assert lines[1].startswith(f"resnet56-A - resnet20-A train error: +0.00 points {stats.interval_text(d.low, d.high)}")
    assert lines[1].endswith("(3 seeds each, Welch)")


def test_one_seed_says_no_interval_can_be_given(tmp_path, capsys):
    root = tmp_path / "sweep"
    fake_run(root, "0_plain20", "plain", 20, 0, 6.0, 7.0)
    fake_run(root, "1_plain56", "plain", 56, 0, 80.0, 81.0)
    assert main(["compare", str(root)]) == 0
    out = _flat(capsys.readouterr().out)
    assert "one seed per configuration: no interval can be given" in out
    assert "plain56 - plain20 train error: +74.00 points (1 seed each: no interval can be given)" in out
    assert main(["compare", str(root / "0_plain20")]) == 0  # one run: no comparison either
    assert "one seed per configuration: no interval can be given" in _flat(capsys.readouterr().out)


def test_figure_bands_are_the_intervals(tmp_path):
    """The curve figure's band at each step is the report's interval of the seeds' values there."""
    import matplotlib.pyplot as plt
    from resexp.report import figures
    curves = {0: [50.0, 20.0], 1: [60.0, 10.0], 2: [58.0, 16.0]}
    for seed, (first, last) in curves.items():
        fake_run(tmp_path, f"{seed}_plain20", "plain", 20, seed, last, last,
                 metrics=[{"step": 10, "train_error": first}, {"step": 20, "train_error": last}])
    fig, ax = plt.subplots()
    figures._mean_band(ax, load_runs([tmp_path]), "train_error", "-", color="C0")
    band = {tuple(v) for v in ax.collections[0].get_paths()[0].vertices.round(9)}
    plt.close(fig)
    for step, i in ((10, 0), (20, 1)):
        low, high = stats.interval([c[i] for c in curves.values()])
        assert (step, round(low, 9)) in band and (step, round(high, 9)) in band


def test_seeds_needed_with_unequal_spreads_uses_welchs_degrees_of_freedom():
    """A difference of 3 points between sides with stds 1 and 4: Welch's tests on 100,000 simulated draws
    found it 78.2% of the time with 16 seeds a side and 81.1% with 17 (Student's degrees of freedom,
    2n - 2, would say 16)."""
    assert stats.seeds_needed(3.0, 1.0, 4.0) == 17


def test_statistics_read_at_80_columns(tmp_path):
    """Long configuration names (a swept activation) still give lines of 80 characters at most."""
    from rich.console import Console
    root = _degradation(tmp_path / "sweep")
    for seed in (0, 1, 2):
        fake_run(root, f"{20 + seed}_resnet56_act=leaky_relu_seed={seed}", "resnet", 56, seed, 4.0 + seed, 5.0,
                 activation="leaky_relu")
    console = Console(width=80, record=True)
    stats.print_statistics(load_runs([root]), console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "resnet56-A act=leaky_relu - resnet56-A train error: +3.00 points" in " ".join(text.split())
