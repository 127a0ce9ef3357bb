"""`resexp train ARGS`: Hydra's flags and overrides checked (a flag it does not know is one line), a
`resume=RUN` turned into that run's own overrides, every job of a sweep composed and checked before any
starts (sweep.precheck), then Hydra runs the jobs; the outcome is read back from their run directories."""
import sys

import hydra
from hydra.core.override_parser.types import Quote, QuotedString

from . import config as _config
from .errors import UserError
from .sweep import parse_one, parse, precheck, values
from .world import rank, world_size

# Hydra flags that take a value, and flags after which no pre-check is wanted.
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun", "--info", "-i"}
_HELP_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
_FLAGS = {*_FLAGS_WITH_VALUE, *_HELP_FLAGS, "-m", "--multirun", "-r", "--run", "--resolve", "--version"}


def _split_args(args):
    """(hydra flags, overrides); `experiment=x` is accepted for `+experiment=x`."""
    flags, overrides, skip = [], [], False
    for arg in args:
        if not skip and arg.startswith("-") and arg.split("=")[0] not in _FLAGS:
            raise UserError(f"resexp train: unrecognized argument {arg}; see resexp train --help")
        if skip or arg.startswith("-"):
            flags.append(arg)
            skip = not skip and arg in _FLAGS_WITH_VALUE and "=" not in arg
            continue
        overrides.append("+" + arg if arg.startswith("experiment=") else arg)
    return flags, overrides


def resume_overrides(overrides, multirun: bool):
    """`resume=DIR` continues DIR with its saved config: Hydra's run directory becomes DIR itself."""
    resume = [o for o in overrides if o.startswith("resume=")]
    if not resume:
        return overrides
    others = [o for o in overrides if not o.startswith(("resume=", "hydra.job_logging", "hydra/"))]
    if multirun:
        raise UserError("resume= continues one run; drop -m (a re-run sweep resumes its jobs by itself)")
    run_dir = _unquoted(resume[0].split("=", 1)[1])
    saved = _config.read_yaml(_config.resume_config(run_dir)).trainer
    longer = [o for o in others if o.partition("=")[0] in ("trainer.steps", "trainer.epochs")]
    extra = [o for o in others if o not in longer] or longer[1:]
    if extra:
        raise UserError("resume= continues a run with its saved config, or trains it longer with one of "
                        f"trainer.steps=N or trainer.epochs=N; drop the other overrides: {' '.join(extra)}")
    for line in longer:
        key, _, value = line.partition("=")
        if key == "trainer.epochs" and saved.steps:
            raise UserError(f"{run_dir} counts its length in trainer.steps ({saved.steps}); "
                            f"train it longer with trainer.steps=N, N > {saved.steps}")
        if not value.isdigit():
            raise UserError(f"{line} is invalid; it must be a positive whole number")
        now = saved.steps if key == "trainer.steps" else saved.epochs
        if now and int(value) <= now:  # a run counted in epochs, raised in steps: checked against its checkpoint
            raise UserError(f"{line} does not train {run_dir} longer: it was set to {key}={now}; give more")
    # Quoted for Hydra's parser, which takes no spaces or non-ASCII letters unquoted.
    quoted = QuotedString(text=run_dir, quote=Quote.single).with_quotes()
    return [*(f"resume={quoted}" if o.startswith("resume=") else o for o in overrides), f"hydra.run.dir={quoted}"]


def _unquoted(value: str) -> str:
    """A path as given, without the quotes Hydra's syntax would have wanted around it (`resume="a b"`)."""
    if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
        return parse_one(f"x={value}").value()
    return value


def show_run(run_dir) -> None:
    """A finished run's table, on stdout and in the run's log."""
    from .console import log_renderable
    from .report.runs import load_runs
    from .report.tables import print_table, rich_table
    runs = load_runs([run_dir])
    print_table(runs, f"run {run_dir}")
    log_renderable(rich_table(runs, f"run {run_dir}", None, None))


def train(args) -> int:
    """`resexp train ARGS`. Exit code: one run's own (0 finished, 1 failed, 2 bad input, 3 diverged); a
    sweep's is 0 when every job finished, else 1."""
    flags, overrides = _split_args(args)
    multirun = "-m" in flags or "--multirun" in flags
    if world_size() > 1 and multirun:
        raise UserError("torchrun runs one training job over several processes; drop -m "
                        "(a sweep's jobs go one per GPU with hydra/launcher=joblib)")
    overrides = resume_overrides(overrides, multirun)
    if not _HELP_FLAGS.intersection(flags) and "--cfg" not in flags and "-c" not in flags:
        overrides = [*overrides, *precheck(overrides, multirun)]
    if rank() > 0:  # under torchrun: rank 0 alone runs Hydra and owns the run
        from .train.job import follow_leader
        return follow_leader()
    codes = []  # the exit codes of the jobs run in this process

    @hydra.main(version_base="1.3", config_path="pkg://resexp.conf", config_name="train")
    def job(cfg) -> None:
        from .train.job import run_job  # torch is imported only once a job really runs
        codes.append(run_job(cfg, show_run))

    sys.argv = ["resexp train", *flags, *overrides]
    job()
    if not multirun:
        return codes[0] if codes else 0
    from .report.summary import all_finished  # the jobs' records, whichever processes ran them
    sweep_dir = next((values(o)[0] for o in parse(overrides) if o.get_key_element() == "hydra.sweep.dir"), None)
    return int(any(codes) or sweep_dir is not None and not all_finished(sweep_dir))
