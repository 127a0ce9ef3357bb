"""One Hydra job: validate, claim (or resume) the run directory, prepare, train, record the outcome.

A run's record (config.yaml, status.json, metrics, checkpoints) only ever changes to a newer truthful state
of that run: everything that can fail before training (the data, the model, the checkpoint, the metrics)
is done before the status says `running`, and a failure there leaves the record as it was."""
import os
import shlex
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf
from rich.markup import escape

from ..config import load_run_config, resume_config, validate
from ..console import log, run_log, say
from ..errors import UserError, debug_enabled
from ..files import Busy, hold, remove_new_files
from ..names import resume_arg
from ..track.status import CONFIG_FILE, KILLED, read_status, write_status
from . import distributed
from .checkpoint import checkpoint_name
from .interrupt import StopRequest
from .loop import Diverged, Interrupted, prepare, train

# Exit codes of `resexp train` besides 0 (finished) and 2 (bad input).
EXIT_FAILED, EXIT_DIVERGED = 1, 3
LOG_FILE = "train.log"
OVERRIDES_FILE = "overrides.yaml"
LOCK_FILE = ".resexp-lock"  # held by the process training the run (files.hold)
# What a new run's directory may already hold: the log Hydra opens for the job, and the lock.
NEW_RUN_FILES = (LOG_FILE, LOCK_FILE)
# The keys `resume=RUN` may raise to train a run longer; nothing else of a run's config may change.
LONGER = ("trainer.steps", "trainer.epochs")


def _first_difference(a, b, prefix=""):
    """The first dotted key whose value differs between two plain containers, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def _given_longer() -> dict:
    """The LONGER keys given on the command line, as typed values."""
    given = {}
    for line in HydraConfig.get().overrides.task:
        key, _, value = line.partition("=")
        if key in LONGER:
            given[key] = int(value)  # checked to be a whole number before any job started
    return given


class Claim:
    """The run directory a job trains in, what it held before and what the job will do with it."""

    def __init__(self, run_dir: Path, cfg, previous: dict | None, longer: bool):
        self.run_dir, self.cfg, self.previous, self.longer = run_dir, cfg, previous, longer
        self.fresh = previous is None and not (run_dir / CONFIG_FILE).exists()


def _foreign(run_dir: Path) -> list[str]:
    """The names in a directory holding no run that a new run there could not leave as they are."""
    return sorted(p.name for p in run_dir.iterdir() if p.name not in NEW_RUN_FILES) if run_dir.is_dir() else []


def claim_run_dir(cfg, held: ExitStack) -> Claim:
    """The run directory and the config to run, claimed for this process until `held` closes (a lock that
    two processes started together cannot both take); writes nothing else. A directory that already holds a
    run is continued when its config is the same (a re-run sweep job, `resume=`), or raised to more steps or
    epochs (`resume=RUN trainer.steps=N`): from its newest intact checkpoint, or from step 0 when it has none
    (killed before its first one); a run still training elsewhere, a different run, or files that are no
    run's are refused."""
    longer = {}
    if cfg.resume:
        run_dir = Path(cfg.resume)
        cfg = load_run_config(resume_config(run_dir))
        longer = _given_longer()
        for key, value in longer.items():
            OmegaConf.update(cfg, key, value)
        validate(cfg)
    else:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    previous = read_status(run_dir)
    if previous is None and not (run_dir / CONFIG_FILE).exists():
        foreign = _foreign(run_dir)
        if foreign:
            raise UserError(f"run directory {run_dir} holds files that are not a resexp run ({', '.join(foreign[:5])}"
                            f"{', ...' if len(foreign) > 5 else ''}); choose a new or empty hydra.run.dir")
    held.enter_context(hold(run_dir / LOCK_FILE, f"run directory {run_dir} is being trained by another process; "
                                                 "wait for it to end, or stop that process first"))
    previous = read_status(run_dir)  # as it is now that no other process can change it
    if previous is None and not (run_dir / CONFIG_FILE).exists():
        return Claim(run_dir, cfg, None, False)
    saved = OmegaConf.to_container(load_run_config(run_dir / CONFIG_FILE))
    if longer:
        OmegaConf.update(saved := OmegaConf.create(saved), "trainer", cfg.trainer, merge=True)
        saved = OmegaConf.to_container(saved)
    difference = _first_difference({**saved, "resume": None},
                                    {**OmegaConf.to_container(cfg, resolve=True), "resume": None})
    if difference:
        key, old, new = difference
        raise UserError(f"run directory {run_dir} already holds a different run ({key}={old!r}, not {new!r}); "
                        "choose another hydra.run.dir / hydra.sweep.dir, or resume it as it is")
    previous = previous or {"status": "failed", "error": "no status file"}
    total = cfg.trainer.steps
    if longer and total and isinstance(previous.get("steps"), int) and total <= previous["steps"]:
        raise UserError(f"{run_dir} has trained {previous['steps']} steps already; to train it longer give "
                        f"trainer.steps=N, N > {previous['steps']}")
    if previous["status"] == "running" and previous.get("pid") != os.getpid():
        raise UserError(f"run directory {run_dir} is being trained by process {previous.get('pid')} on "
                        f"{previous.get('host', 'this host')}; wait for it to end, or stop that process first")
    return Claim(run_dir, cfg, previous, bool(longer))


def _announce(claim: Claim) -> list[str]:
    """The line that opens a job's output: its run directory, unbroken."""
    line = f"run directory: {escape(str(claim.run_dir.absolute()))}"
    say(line)
    return [line]


def _announce_resume(claim: Claim, step: int) -> list[str]:
    """What a job continues, once it is known which checkpoint it restored (a newer one that does not
    read back whole was skipped, with a warning line)."""
    if claim.previous is None:
        return []
    was = claim.previous["status"] + (" (its process is gone)" if claim.previous["status"] == KILLED else "")
    line = (f"resuming {escape(str(claim.run_dir))} ({was}) from {checkpoint_name(step)}" if step else
            f"restarting {escape(str(claim.run_dir))} ({was}, no checkpoint) from step 0")
    say(line)
    return [line]


def _record_new_run(claim: Claim) -> None:
    """config.yaml and overrides.yaml of a new run, or the config of a run trained longer."""
    OmegaConf.save(claim.cfg, claim.run_dir / CONFIG_FILE, resolve=True)
    if claim.fresh:
        OmegaConf.save(OmegaConf.create(list(HydraConfig.get().overrides.task)), claim.run_dir / OVERRIDES_FILE)


def _failed_before_training(claim: Claim | None, cfg, message: str) -> None:
    """A job that failed before it trained: a run the directory already held keeps its record untouched. A
    new single run leaves nothing behind (the directory Hydra made for it is removed when empty); a new
    sweep job records `failed` with its one-line error and its config, so that the sweep lists it."""
    run_dir = claim.run_dir if claim else Path(HydraConfig.get().runtime.output_dir)
    if claim is not None and not claim.fresh or cfg.get("resume") or read_status(run_dir) is not None \
            or (run_dir / CONFIG_FILE).exists() or _foreign(run_dir):
        return
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        remove_new_files(run_dir, NEW_RUN_FILES, Path.cwd())
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
    except Exception:  # noqa: BLE001  an unresolvable config is saved as written
        OmegaConf.save(cfg, run_dir / CONFIG_FILE)
    write_status(run_dir, "failed", error=message)


def _fail(e: Exception, claim: Claim | None, cfg, started: bool) -> int:
    """Say why the job failed in one line (RESEXP_DEBUG=1: after its traceback) and record it: `failed`
    once the run has started training, else as `_failed_before_training` says. Returns the exit code."""
    if debug_enabled():
        traceback.print_exc()
    message = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}".splitlines()[0]
    hint = "" if isinstance(e, UserError) or debug_enabled() else " (RESEXP_DEBUG=1 shows the traceback)"
    say(f"[bold red]error:[/] {escape(message)}{hint}", err=True)
    if started:
        write_status(claim.run_dir, "failed", error=message)
    elif not isinstance(e, Busy):  # a directory another process trains in is its, untouched
        _failed_before_training(claim, cfg, message)
    return 2 if isinstance(e, UserError) else EXIT_FAILED


def run_job(cfg, show=lambda run_dir: None) -> int:
    """Run one training job and record its status; returns its exit code. `show(run_dir)` prints a finished
    run's table (the caller's: train/ knows nothing of report/), into the run's log too."""
    with ExitStack() as held:  # the run directory's claim, until the job ends
        return _run_job(cfg, held, show)


def _run_job(cfg, held: ExitStack, show) -> int:
    claim = claimed = None
    try:
        distributed.setup()
        try:
            validate(cfg)
            claim = claim_run_dir(cfg, held)
            if claim.previous and claim.previous["status"] == "finished" and not claim.longer:
                say(f"{escape(str(claim.run_dir))} already finished ({claim.previous.get('steps')} steps); "
                    f"left as it is (to train it longer: resexp train {escape(resume_arg(claim.run_dir))} "
                    "trainer.steps=N)")
                return 0
            claimed = (str(claim.run_dir), OmegaConf.to_container(claim.cfg, resolve=True))
        finally:
            distributed.share(claimed)  # under torchrun the other ranks train this run, or stop on None
        opening = _announce(claim)
        prepared = prepare(claim.cfg, claim.run_dir)  # data, model, checkpoint, metrics: nothing written yet
        opening += _announce_resume(claim, prepared.run.step)
        if claim.longer and prepared.run.step >= prepared.tr.total_steps:
            raise UserError(f"{claim.run_dir} has trained {prepared.run.step} steps already; to train it longer "
                            f"give more than that (this config makes {prepared.tr.total_steps})")
        if claim.fresh or claim.longer:
            _record_new_run(claim)
    except Exception as e:  # noqa: BLE001  failed before training: one line, the record as it was
        return _fail(e, claim, cfg, started=False)
    write_status(claim.run_dir, "running", started=time.time(), step=prepared.run.step,
                 total_steps=prepared.tr.total_steps)
    with run_log(claim.run_dir / LOG_FILE), StopRequest() as stop:
        for line in opening:
            log(line)
        try:
            return _train(claim.cfg, claim.run_dir, stop, prepared, show)
        except Exception as e:  # noqa: BLE001  a failed run is recorded, not lost
            return _fail(e, claim, claim.cfg, started=True)


def _train(cfg, run_dir: Path, stop, prepared, show) -> int:
    """Train the prepared run; record and say how it ended. Returns the exit code."""
    try:
        result = train(cfg, run_dir, stop, prepared)
    except Interrupted as e:
        write_status(run_dir, "interrupted", step=e.step)
        again = (f"torchrun --nproc_per_node={distributed.world_size()} -m resexp"
                 if distributed.world_size() > 1 else "resexp")
        say(f"[magenta]interrupted[/] at step {e.step}, checkpoint saved; continue with:")
        say(f"  {again} train {escape(resume_arg(run_dir))}")
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # the sweep's later jobs have not started
            sweep = shlex.quote(f"hydra.sweep.dir={HydraConfig.get().sweep.dir}")
            say(f"or finish the whole sweep: run its command again with {escape(sweep)} (this job resumes, "
                "finished jobs are left as they are, the rest start)")
        raise SystemExit(128 + e.signum) from None
    except Diverged as e:
        last = e.row or {}
        write_status(run_dir, "diverged", step=e.step, final_test_error=last.get("test_error"),
                     final_train_error=last.get("train_error"), last_finite_step=last.get("step"))
        say(f"[yellow]diverged[/]: non-finite or exploding loss or gradient at step {e.step}; "
            f"last finite metrics kept in {escape(str(run_dir))}")
        return EXIT_DIVERGED
    write_status(run_dir, "finished", **result)
    show(run_dir)
    return 0


def follow_leader() -> int:
    """A rank other than 0 under torchrun: train rank 0's run (its directory and config) in step with it,
    writing nothing and printing nothing; rank 0 reports the outcome. Returns the exit code."""
    distributed.setup()
    claimed = distributed.share(None)
    if claimed is None:  # rank 0 refused the run and said why
        return 2
    run_dir, cfg = Path(claimed[0]), OmegaConf.create(claimed[1])
    try:
        with StopRequest() as stop:
            train(cfg, run_dir, stop)
    except Interrupted as e:
        return 128 + e.signum
    except Diverged:
        return EXIT_DIVERGED
    except UserError:
        return 2
    return 0
