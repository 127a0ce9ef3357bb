"""A run's status file: running, finished, diverged, failed or interrupted, plus its final numbers.

`killed` is never written: it is how a `running` run whose process is gone (SIGKILL, a lost node, an
out-of-memory kill) reads back, so reports and `resexp status` never show a dead run as running."""
import json
import os
import socket
from pathlib import Path

STATUS_FILE = "status.json"
CONFIG_FILE = "config.yaml"  # the run's composed config, as it ran
STATUSES = ("running", "finished", "diverged", "failed", "interrupted")
KILLED = "killed"


def write_status(run_dir: Path, status: str, **fields) -> None:
    """Replace the status file atomically, so a reader never sees half of it. A running run also records
    its process and host, so that a reader can tell when it has died."""
    assert status in STATUSES, status
    if status == "running":
        fields = {"pid": os.getpid(), "host": socket.gethostname(), **fields}
    path = Path(run_dir) / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"status": status, **fields}, indent=2) + "\n")
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def read_status(run_dir) -> dict | None:
    """The status file's contents (None when there is none); a `running` run whose process is gone on
    this host reads as `killed`: resume it (`resexp train resume=RUN`) or re-run its sweep."""
    path = Path(run_dir) / STATUS_FILE
    if not path.exists():
        return None
    try:
        status = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"status": "failed", "error": f"unreadable {path}"}
    if not isinstance(status, dict):
        return {"status": "failed", "error": f"unreadable {path}"}
    if (status.get("status") == "running" and isinstance(status.get("pid"), int)
            and status.get("host", socket.gethostname()) == socket.gethostname() and not _alive(status["pid"])):
        status = {**status, "status": KILLED}
    return status


def reached_step(status: dict, metrics: list[dict]) -> int:
    """How far a run got: all its steps when finished; else its last metrics row or, before its first, the
    step its status file records (where it started or stopped), whichever is later."""
    if status.get("status") == "finished" and isinstance(status.get("steps"), int):
        return status["steps"]
    return max(metrics[-1]["step"] if metrics else 0, status.get("step") or 0)
