"""Errors meant for the user: one line naming the problem and what is allowed, no traceback."""
import os


class UserError(Exception):
    """A problem with the user's input or files, reported as one line."""


def debug_enabled() -> bool:
    """RESEXP_DEBUG=1 shows full tracebacks instead of one-line errors."""
    return os.environ.get("RESEXP_DEBUG", "") not in ("", "0")
