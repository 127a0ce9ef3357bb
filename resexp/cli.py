"""The `resexp` command: `resexp train [hydra overrides]` and friends."""
import os
import sys
from pathlib import Path

import hydra

from . import config as _config  # registers the run-name resolvers before Hydra composes anything
from .errors import UserError, debug_enabled
from .overrides import compose_job, hydra_initialized, parse, sweep_jobs, values
from .track.summary import SweepSummary

USAGE = """usage: resexp COMMAND [ARGS]

commands:
  train     train one model, or sweep with -m (Hydra overrides: resexp train model=plain depth=56)
  bench     training throughput (images/s) of plain and residual nets on this machine
  doctor    check the GPU speed paths (CUDA graph, compile, determinism, resume, DDP) on this machine
  report    figures and tables of a run, a sweep or runs/: resexp report PATH (writes PATH/report/)
  compare   one table of hand-picked runs: resexp compare RUN_A RUN_B ...
  describe  layers, parameters, multiply-adds, activation memory per stage (train's overrides)
  gradients per-layer gradient norm and activation std at init, one batch (train's overrides)
  lesion    test error of a trained run with blocks deleted: resexp lesion RUN [RUN ...]
  landscape training loss of trained runs on a random plane of weights: resexp landscape RUN [RUN ...]
  paths     gradient carried by paths of each length through a trained ResNet: resexp paths RUN

`resexp train --help` lists the config groups and keys; `resexp train --cfg job` prints the composed config.
"""

# Hydra flags that take a value, and flags after which no pre-check is wanted.
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun", "--info", "-i"}
_HELP_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}

_exit_code = 0


@hydra.main(version_base="1.3", config_path="pkg://resexp.conf", config_name="train")
def _hydra_train(cfg) -> None:
    from .train.job import run_job  # torch is imported only once a job really runs
    global _exit_code
    _exit_code = max(_exit_code, run_job(cfg))


def _split_args(args):
    """(hydra flags, overrides); `experiment=x` is accepted for `+experiment=x`."""
    flags, overrides, skip = [], [], False
    for arg in args:
        if skip or arg.startswith("-"):
            flags.append(arg)
            skip = not skip and arg in _FLAGS_WITH_VALUE and "=" not in arg
            continue
        overrides.append("+" + arg if arg.startswith("experiment=") else arg)
    return flags, overrides


def precheck(overrides, multirun: bool) -> list[str]:
    """Compose and validate every job of the sweep (one job without -m) before Hydra runs: every invalid
    combination is reported in one message, before any job starts or any directory is made.

    Returns the Hydra override that leaves out of the run names every key whose value is the same in all
    jobs (resexp/names.py), so a sweep's runs are named by what differs between them."""
    parsed = parse(overrides)
    for o in parsed:
        key = o.get_key_element().lstrip("+~")
        if o.is_sweep_override() and not multirun:
            raise UserError(f"'{o.input_line}' sweeps several values; add -m to run a multirun sweep")
        if key in _config.GROUPS:
            for v in values(o):
                _config.check_group_option(key, v)
        if key in ("hydra.run.dir", "hydra.sweep.dir") and values(o):
            check_writable(key, values(o)[0])
    if not multirun:
        cfg = compose_job(overrides)
        _config.validate(cfg)
        _config.prepare_determinism([cfg])
        return []
    first = [f"{o.get_key_element()}={values(o)[0]}" for o in parsed if values(o)]
    with hydra_initialized():  # once for every job
        base = compose_job([o for o in first if not o.startswith("hydra.")], hydra=True)
        jobs = sweep_jobs(_with_preset_sweep(overrides, base.hydra.sweeper.params))
        failures = {}  # message -> indices of the jobs failing with it
        cfgs = []
        for i, job in enumerate(jobs):
            try:
                cfgs.append(compose_job(job))
                _config.validate(cfgs[-1])
            except UserError as e:
                failures.setdefault(str(e), []).append(i)
    differ = _differing(jobs)
    if failures:
        raise UserError(_failure_message(failures, jobs, differ))
    _config.prepare_determinism(cfgs)
    keys = dict.fromkeys(line.partition("=")[0].lstrip("+~") for job in jobs for line in job)
    same = [k for k in keys if k not in differ and not k.startswith("hydra")]
    exclude = [*(k for k in base.hydra.job.config.override_dirname.exclude_keys if k not in differ), *same]
    return [f"hydra.job.config.override_dirname.exclude_keys=[{','.join(exclude)}]"]


def _with_preset_sweep(overrides, params) -> list[str]:
    """The sweep as Hydra's basic sweeper runs it: an experiment preset's `hydra.sweeper.params` first,
    a command-line override of the same key replacing the preset's values in place."""
    merged = {str(k): f"{k}={v}" for k, v in (params or {}).items()}
    for line in overrides:
        merged[line.partition("=")[0]] = line
    return list(merged.values())


def _differing(jobs) -> set[str]:
    """Keys whose value is not the same in every job."""
    seen = {}
    for job in jobs:
        for line in job:
            key, _, value = line.partition("=")
            seen.setdefault(key.lstrip("+~"), set()).add(value)
    return {k for k, v in seen.items() if len(v) > 1}


def _failure_message(failures: dict, jobs, differ) -> str:
    """First line: how many jobs are invalid; then one line per distinct problem, with the swept values
    its jobs share (`depth=21`) and which jobs they are."""
    bad = sum(len(i) for i in failures.values())
    lines = [f"{bad} of {len(jobs)} jobs of the sweep are invalid; nothing was run:"]
    for message, indices in failures.items():
        shared = set.intersection(*({line for line in jobs[i] if line.partition("=")[0].lstrip("+~") in differ}
                                    for i in indices))
        where = " ".join(line for line in jobs[indices[0]] if line in shared)
        numbers = ", ".join(map(str, indices[:10])) + (", ..." if len(indices) > 10 else "")
        lines.append(f"  {where + ': ' if where else ''}{message} (job{'s' if len(indices) > 1 else ''} {numbers})")
    return "\n".join(lines)


def check_writable(key: str, directory: str) -> None:
    """An output directory must be creatable: its nearest existing ancestor a writable directory."""
    path = Path(directory).absolute()
    while not path.exists():
        path = path.parent
    if not path.is_dir():
        raise UserError(f"{key}={directory} cannot be created: {path} is a file, not a directory")
    if not os.access(path, os.W_OK):
        raise UserError(f"{key}={directory} cannot be created: {path} is not writable")


def resume_overrides(overrides, multirun: bool):
    """`resume=DIR` continues DIR with its saved config: Hydra's run directory becomes DIR itself."""
    resume = [o for o in overrides if o.startswith("resume=")]
    if not resume:
        return overrides
    others = [o for o in overrides if not o.startswith(("resume=", "hydra.job_logging", "hydra/"))]
    if multirun:
        raise UserError("resume= continues one run; drop -m (a re-run sweep resumes its jobs by itself)")
    if others:
        raise UserError(f"resume= continues a run with its saved config; drop the other overrides: {' '.join(others)}")
    run_dir = resume[0].split("=", 1)[1]
    _config.resume_config(run_dir)
    return [*overrides, f"hydra.run.dir={run_dir}"]


def train_command(args) -> int:
    """Exit code: one run's own (0 finished, 1 failed, 2 bad input, 3 diverged); a sweep's is 0 when
    every job finished, else 1."""
    flags, overrides = _split_args(args)
    multirun = "-m" in flags or "--multirun" in flags
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and multirun:
        raise UserError("torchrun runs one training job over several processes; drop -m "
                        "(a sweep's jobs go one per GPU with hydra/launcher=joblib)")
    overrides = resume_overrides(overrides, multirun)
    if not _HELP_FLAGS.intersection(flags) and "--cfg" not in flags and "-c" not in flags:
        overrides = [*overrides, *precheck(overrides, multirun)]
    global _exit_code
    _exit_code = 0
    SweepSummary.unfinished = 0
    if int(os.environ.get("RANK", 0)) > 0:  # under torchrun: rank 0 alone runs Hydra and owns the run
        from .train.job import follow_leader
        return follow_leader()
    sys.argv = ["resexp train", *flags, *overrides]
    _hydra_train()
    return int(SweepSummary.unfinished > 0 or _exit_code != 0) if multirun else _exit_code


def bench_command(args) -> int:
    from .bench import main as bench
    return bench(args)


def doctor_command(args) -> int:
    from .doctor import main as doctor
    return doctor(args)


def report_command(args) -> int:
    from .report.command import report
    return report(args)


def compare_command(args) -> int:
    from .report.command import compare
    return compare(args)


def explain_command(name):
    """`resexp describe|gradients|lesion|landscape|paths`: resexp/explain/<name>.py's main(args)."""
    def command(args) -> int:
        from importlib import import_module
        return import_module(f".explain.{name}", __package__).main(args)
    return command


COMMANDS = {"train": train_command, "bench": bench_command, "doctor": doctor_command, "report": report_command,
            "compare": compare_command,
            **{name: explain_command(name) for name in ("describe", "gradients", "lesion", "landscape", "paths")}}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](rest)
    except UserError as e:
        if debug_enabled():
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def entry() -> None:
    sys.exit(main())
