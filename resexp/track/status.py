"""A run's status file: running, finished, diverged, failed or interrupted, plus its final numbers."""
import json
import os
from pathlib import Path

STATUS_FILE = "status.json"
CONFIG_FILE = "config.yaml"  # the run's composed config, as it ran
STATUSES = ("running", "finished", "diverged", "failed", "interrupted")


def write_status(run_dir: Path, status: str, **fields) -> None:
    """Replace the status file atomically, so a reader never sees half of it."""
    assert status in STATUSES, status
    path = Path(run_dir) / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"status": status, **fields}, indent=2) + "\n")
    os.replace(tmp, path)


def read_status(run_dir) -> dict | None:
    path = Path(run_dir) / STATUS_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"status": "failed", "error": f"unreadable {path}"}
