"""Ctrl-C and SIGTERM: the first asks the loop to checkpoint and stop at the next step boundary,
a second exits at once."""
import os
import signal
import sys
import threading


class StopRequest:
    """A flag set by SIGINT/SIGTERM, read by the training loop once per step (under torchrun, at
    log points, where the ranks agree to stop together; no host sync)."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __bool__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:
            print("\nsecond interrupt: exiting now; the run can resume from its last checkpoint",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint at the next step "
              "(interrupt again to exit at once)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
