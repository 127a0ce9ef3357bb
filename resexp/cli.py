"""The `resexp` command: dispatches `resexp COMMAND ARGS` to the module that does it."""
import sys
import traceback
from importlib import import_module

from .console import discard, stdout_lost
from .errors import UserError, debug_enabled

EXIT_OUTPUT_LOST = 141  # 128 + SIGPIPE, as the shell reports a program its closed pipe ended

# command -> (module, function, what it does): each module is imported only when its command runs, so
# `resexp --help` and `--version` load no torch.
COMMANDS = {
    "train": ("train_command", "train", "train one model, or sweep with -m (Hydra overrides: resexp train "
              "model=plain depth=56)"),
    "bench": ("bench", "main", "training throughput (images/s) of plain and residual nets on this machine"),
    "doctor": ("doctor", "main", "check the GPU speed paths (CUDA graph, compile, determinism, resume, DDP) here"),
    "report": ("report.command", "report", "figures and tables of a run, a sweep or runs/: resexp report PATH "
               "(writes PATH/report/)"),
    "compare": ("report.command", "compare", "one table of hand-picked runs: resexp compare RUN_A RUN_B ..."),
    "describe": ("explain.describe", "main", "layers, parameters, multiply-adds, activation memory per stage "
                 "(train's overrides)"),
    "gradients": ("explain.gradients", "main", "per-layer gradient norm and activation std at init, one batch "
                  "(train's overrides)"),
    "lesion": ("explain.lesion", "main", "test error of a trained run with blocks deleted: resexp lesion RUN "
               "[RUN ...]"),
    "landscape": ("explain.landscape", "main", "training loss of trained runs on a random plane of weights: "
                  "resexp landscape RUN [RUN ...]"),
    "curvature": ("explain.curvature", "main", "training loss's Hessian top eigenvalue and trace at trained runs' "
                  "checkpoints, vs 2/lr: resexp curvature RUN [RUN ...]"),
    "paths": ("explain.paths", "main", "gradient carried by paths of each length through a trained ResNet: "
              "resexp paths RUN"),
    "signal": ("explain.signal", "main", "each block's output mean and variance, and the input-output Jacobian's "
               "singular values, at init (train's overrides)"),
    "status": ("report.overview", "main", "the runs under a directory: state, step/total, errors, age; dead ones "
               "marked: resexp status [DIR]"),
}


def usage() -> str:
    width = max(map(len, COMMANDS)) + 2
    lines = [f"  {name:<{width}}{about}" for name, (_, _, about) in COMMANDS.items()]
    return "\n".join(["usage: resexp COMMAND [ARGS]", "", "commands:", *lines, "",
                      "`resexp --version` prints the version; `resexp COMMAND --help` what the command takes",
                      "(`resexp train --help` lists the config groups and keys; `--cfg job` the composed config).",
                      ""])


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:  # a command is needed: the list of them, and the exit code of a usage error
        print(usage(), end="", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version
        print(f"resexp {version('resexp')}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[command]
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
