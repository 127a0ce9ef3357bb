"""Places resexp writes to: checked before any work, claimed atomically, never overwritten."""
import errno
import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError


def check_writable(what: str, path, directory: bool = False) -> None:
    """`path` (a file to write, or with `directory` a directory to write into) must be creatable: the nearest
    existing ancestor a directory that really takes a new entry (os.access says yes to root on a read-only
    file system such as /proc, so it is tried), and `path` itself, where it exists, writable and of its kind.
    One line naming the place otherwise: `what` and the absolute path (`--out /abs/dir`), or, for `what`
    ending in `=`, the value as given (`key=value`)."""
    given = path
    path = Path(path).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    place = _place(what, given, path)
    if existing != path and not existing.is_dir():
        raise UserError(f"{place} cannot be created: {existing} is a file, not a directory")
    if directory and not path.is_dir() and path.exists():
        raise UserError(f"{place} is a file, not a directory; give a directory")
    if not os.access(existing, os.W_OK) or existing.is_dir() and not os.access(existing, os.X_OK):
        where = "" if existing == path else f": {existing} is not writable"
        raise UserError(f"{place} cannot be written{where or ' (read-only)'}; "
                        "choose a place you can write to, or fix its permissions")
    why = _try_writing(existing)
    if why:
        raise UserError(f"{place} cannot be {'created' if existing != path else 'written'}: {why}; "
                        "choose a place you can write to")


def _try_writing(existing: Path) -> str | None:
    """Why `existing` (a directory, or a file) cannot be written, found by trying; None when it can. A
    directory is probed with an empty directory made and removed at once; a file is opened to append."""
    try:
        if existing.is_dir():
            os.rmdir(tempfile.mkdtemp(prefix=".resexp-probe-", dir=existing))
        else:
            open(existing, "a").close()
    except OSError as e:
        return f"{existing} {'takes no new entries' if existing.is_dir() else 'cannot be opened'} ({e.strerror or e})"
    return None


def check_new_files(what: str, path, patterns) -> Path:
    """A directory given on the command line (`--out DIR`) to write files into: refused in one line, before
    any work, when it is a file or already holds a file of one of `patterns` (`summary.md`,
    `degradation*.png`), so that nothing there is ever replaced; then check_writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; give a directory")
    taken = list(dict.fromkeys(p.name for pattern in patterns for p in sorted(path.glob(pattern)))) \
        if path.is_dir() else []
    if taken:
        raise UserError(f"{what} {path} already holds {', '.join(taken)}; choose another directory")
    check_writable(what, path, directory=True)
    return path


def make_dir(path) -> Path:
    """Create an output directory whose place check_writable approved, with its parents; an OS error it
    could not foresee (a full disk, a special file system) is one line naming the place."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path} cannot be created: {e.strerror or e}") from None
    return Path(path)


def write_text(path, text: str) -> None:
    """Write an output file whose place check_writable approved (its folders made as needed); an OS error
    is one line naming the file."""
    make_dir(Path(path).parent)
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise UserError(f"{path} cannot be written: {e.strerror or e}") from None


def _place(what: str, given, path: Path) -> str:
    return f"{what}{given}" if what.endswith("=") else f"{what} {path}"


def claim_new_dir(path) -> Path:
    """Create a new directory at `path`, or at `path-2`, `path-3`, ... when that name is taken: two commands
    started in the same second get two directories (mkdir is atomic: only one of them can make a name)."""
    path = Path(path)
    check_writable("output directory", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as e:
            raise UserError(f"output directory {candidate} cannot be created: "
                            f"{e.strerror or errno.errorcode.get(e.errno, e)}") from None
    raise UserError(f"output directory {path}: 999 directories of that name exist; give --out")


def remove_new_files(run_dir: Path, names, stop_at: Path) -> None:
    """Undo a directory this process made for a job that failed before any work: remove the files it wrote
    there (`names`), then the directory and its parents while they are empty, never `stop_at` or above it."""
    run_dir, stop_at = Path(run_dir).absolute(), Path(stop_at).absolute()
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
    folder = run_dir
    while folder != stop_at and stop_at in folder.parents:
        try:
            folder.rmdir()  # only an empty directory: anything else in it stays
        except OSError:
            return
        folder = folder.parent


class Busy(UserError):
    """A place another live process holds (files.hold)."""


@contextmanager
def hold(path, busy: str):
    """An exclusive lock on the file `path` (made empty when missing, never written) for the block. The OS
    drops it when its process ends, however it ends (SIGKILL too), so no claim outlives its process, and of
    two processes asking at the same moment exactly one gets it: the other is refused with `busy`."""
    try:
        f = open(path, "a")
    except OSError as e:
        raise UserError(f"{Path(path).parent} cannot be written: {e.strerror or e}") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(busy) from None
        yield
