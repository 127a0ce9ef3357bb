"""`resexp report PATH` writes PATH/report/; `resexp compare RUN_A RUN_B ...` prints the same table."""
from pathlib import Path

from ..args import Parser
from ..frames import runs_table
from ..files import check_new_files, check_writable, make_dir
from ..console import console
from . import figures, stats, tables
from .runs import load_runs

REPORT_DIR = "report"
TABLES = ("summary.md", "summary.csv", "runs.csv", "differences.csv")
# Every file `report` writes (degradation.png may run to degradation_2.png, ...): a --out folder holding one
# of them is refused, so that no file there is replaced; RUN/report/ is resexp's own, rewritten each time.
REPORT_FILES = (*TABLES, "degradation*.png", "depth.png", "grad_norms.png", "responses.png")


def _parse(prog: str, args, **path_kwargs):
    parser = Parser(prog)
    parser.add_argument("paths", metavar="PATH", **path_kwargs)
    parser.add_argument("--out", metavar="DIR",
                        help="also write summary.md, summary.csv, runs.csv and differences.csv to DIR")
    return parser.parse_args(args)


def _write_tables(runs, out: Path, root: Path, title: str) -> None:
    make_dir(out)
    tables.write_markdown(runs, out / "summary.md", title)
    tables.write_csv(runs, out / "summary.csv")
    runs_table(runs, root).to_csv(out / "runs.csv", index=False)  # resexp.load_runs(root)'s table
    tables.write_differences(runs, out / "differences.csv")


def report(args) -> int:
    opts = _parse("report", args, nargs=1, help="a run directory, a sweep directory or runs/")
    root = Path(opts.paths[0])
    if opts.out:
        out = check_new_files("--out", opts.out, REPORT_FILES)
    else:
        out = root / REPORT_DIR
        check_writable("report directory", out, directory=True)
    runs = load_runs([root])
    title = f"report {root}"
    _write_tables(runs, out, root, title)
    pages = figures.degradation(runs, out / "degradation.png")
    figures.depth(runs, out / "depth.png")
    figures.grad_norms(runs, out / "grad_norms.png")
    drew_responses = figures.responses(runs, out / "responses.png")
    tables.print_table(runs, title)
    stats.print_statistics(runs, console)
    console.print(f"wrote {out}/: summary.md summary.csv runs.csv differences.csv {' '.join(p.name for p in pages)} depth.png grad_norms.png"
                  + (" responses.png" if drew_responses else ""), highlight=False, soft_wrap=True)
    return 0


def compare(args) -> int:
    opts = _parse("compare", args, nargs="+", help="run directories to compare")
    if opts.out:
        check_new_files("--out", opts.out, TABLES)
    runs = load_runs(opts.paths)
    tables.print_table(runs, "compare")
    stats.print_statistics(runs, console)
    if opts.out:
        _write_tables(runs, Path(opts.out), Path.cwd(), "compare")
        console.print(f"wrote {opts.out}/: summary.md summary.csv runs.csv differences.csv", highlight=False, soft_wrap=True)
    return 0
