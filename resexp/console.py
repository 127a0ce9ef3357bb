"""The app's consoles: results on stdout, errors and warnings on stderr (one line each)."""
from rich.console import Console

console = Console()
err_console = Console(stderr=True)
