"""The `resexp` command: dispatches `resexp COMMAND ARGS` to the module that does it."""
import sys
import traceback
from importlib import import_module

from .console import discard, stdout_lost
from .errors import UserError, debug_enabled

EXIT_OUTPUT_LOST = 141  # 128 + SIGPIPE, as the shell reports a program its closed pipe ended

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
  status    the runs under a directory: state, step/total, errors, age; dead ones marked: resexp status [DIR]

`resexp --version` prints the version; `resexp train --help` lists the config groups and keys;
`resexp train --cfg job` prints the composed config.
"""

# command -> (module, function): imported only when the command runs, so `resexp --help` starts fast.
COMMANDS = {"train": ("sweep", "train"), "bench": ("bench", "main"), "doctor": ("doctor", "main"),
            "report": ("report.command", "report"), "compare": ("report.command", "compare"),
            "status": ("report.overview", "main"),
            **{name: (f"explain.{name}", "main") for name in ("describe", "gradients", "lesion", "landscape", "paths")}}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # a command is needed: the list of them, and the exit code of a usage error
        print(USAGE, end="", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version
        print(f"resexp {version('resexp')}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, function = COMMANDS[command]
    try:
        code = getattr(import_module(f".{module}", __package__), function)(rest)
    except BrokenPipeError:  # a plain print() whose reader went away (`resexp describe --json | head`)
        discard(sys.stdout)
        return EXIT_OUTPUT_LOST
    except UserError as e:
        if debug_enabled():  # the traceback too, but the same exit code
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    # A run's record is on disk whether or not anyone read its output; any other command's output was
    # its result, and a reader that left early did not get it all.
    return EXIT_OUTPUT_LOST if code == 0 and command != "train" and stdout_lost() else code


def entry() -> None:
    sys.exit(main())
