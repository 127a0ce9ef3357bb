"""`resexp.run` and `resexp.run_sweep`: `resexp train` from a notebook or a script.

Each goes through the command's own code (train_command.train): the same composition of the config, the same checks
before any work, the same run directory, callbacks (`+logger=mlflow`) and end-of-sweep summary. Only the run
directory is fixed here first (composed with Hydra's compose API, as Hydra itself would name it), so that
its record can be read back and returned. Bad input raises errors.UserError with the command's one line.
(`resexp.train` is the training package and `resexp.train_command` the command's module, hence the names.)
"""
import sys
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Quote, QuotedString

from . import sweep, train_command
from .errors import UserError
from .track.status import read_status


def _overrides(overrides) -> list[str]:
    """The overrides as the command takes them (`experiment=X` for `+experiment=X`); flags are the command's."""
    overrides = overrides.split() if isinstance(overrides, str) else [str(o) for o in overrides]
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise UserError(f"{' '.join(flags)}: give overrides only (run_sweep runs a sweep; the command "
                        "`resexp train` takes Hydra's flags)")
    return ["+" + o if o.startswith("experiment=") else o for o in overrides]


def _given(overrides, key: str) -> str | None:
    """The value of `key=VALUE` among the overrides (unquoted, as Hydra reads it), else None."""
    found = [o for o in sweep.parse(overrides) if o.get_key_element() == key]
    return str(found[-1].value()) if found else None


def _command(args) -> int:
    """`resexp train ARGS` in this process; the caller's sys.argv is left as it was (Hydra reads its own)."""
    argv = sys.argv
    try:
        return train_command.train(args)
    finally:
        sys.argv = argv


def _run_dir(overrides) -> str:
    """The run directory `resexp train OVERRIDES` would make (hydra.run.dir resolved: the time now, the run's
    name from its overrides), after the command's checks."""
    sweep.precheck(overrides, multirun=False)
    with sweep.hydra_initialized():
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # the name's ${hydra:overrides.task}, as Hydra resolves it
    return str(cfg.hydra.run.dir)


def run(overrides=()) -> dict:
    """Train one run as `resexp train OVERRIDES` does (a list of Hydra overrides, or one string of them:
    `run("model=plain depth=56 +debug=smoke")`) and return its record: `run_dir`, `exit_code` (0 finished,
    1 failed, 3 diverged) and its status.json (`status`, `final_test_error`, `best_test_error`,
    `final_train_error`, `parameters`, `steps`, `wall_time`, the paper's number, ...). A run directory that
    already holds this run finished is left as it is and read back."""
    overrides = _overrides(overrides)
    resume = _given(overrides, "resume")
    run_dir = resume or _given(overrides, "hydra.run.dir")
    if run_dir is None:
        run_dir = _run_dir(overrides)
        overrides = [*overrides, f"hydra.run.dir={QuotedString(text=run_dir, quote=Quote.single).with_quotes()}"]
    code = _command(overrides)
    status = read_status(run_dir)
    if status is None:  # refused by the job itself (its line is printed above), nothing recorded
        raise UserError(f"the run in {run_dir} did not start (exit code {code}); the line above says why")
    return {"run_dir": Path(run_dir).absolute(), "exit_code": code, **status}


def run_sweep(overrides=()):
    """Run a sweep as `resexp train -m OVERRIDES` does (`run_sweep("model=plain,resnet depth=8,20
    +debug=smoke")`, or a preset's: `run_sweep("+experiment=degradation_quick")`) and return its runs as
    `resexp.load_runs(SWEEP_DIR)` reads them (the sweep directory is each row's `path`'s parent)."""
    from .frames import load_runs
    overrides = _overrides(overrides)
    sweep_dir = _given(overrides, "hydra.sweep.dir")
    if sweep_dir is None:  # the checks fix the sweep directory (its default holds the time)
        added = sweep.precheck(overrides, multirun=True)
        line = next(o for o in added if o.startswith("hydra.sweep.dir="))
        sweep_dir = line.partition("=")[2]
        overrides = [*overrides, f"hydra.sweep.dir={QuotedString(text=sweep_dir, quote=Quote.single).with_quotes()}"]
    _command(["-m", *overrides])
    return load_runs(sweep_dir)
