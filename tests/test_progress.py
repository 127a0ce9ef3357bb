"""The live progress bar of a run on a terminal (track/progress.py)."""
import re
from io import StringIO

import pytest
from rich.console import Console

from resexp.track import progress


@pytest.mark.parametrize("width", [60, 80, 120])
@pytest.mark.parametrize("name", ["resnet110-B", "preact_resnet1001-B"])
def test_the_bar_keeps_the_steps_and_both_times_whole_at_any_width(monkeypatch, width, name):
    monkeypatch.setattr(progress, "console", Console(file=StringIO(), width=width, force_terminal=True))
    bar = progress.RunProgress(name, 64000, 0, 391)
    bar.bar.update(bar.task, completed=25000, loss="1.234", error="45.6%", speed="2400")
    screen = Console(file=StringIO(), width=width, color_system=None)
    screen.print(bar.bar.get_renderable())
    line = screen.file.getvalue().rstrip("\n")
    assert "\n" not in line and len(line) <= width and "…" not in line, line
    assert line.startswith(name) and "25000/64000" in line
    assert len(re.findall(r"\d:\d\d:\d\d|-:--:--", line)) == 2, line  # elapsed and left
    if width >= 80:
        assert "err 45.6%" in line  # the number a person watches stays while there is room
    if width >= 120:
        assert "epoch 0.0" in line and "loss 1.234" in line and "2400 img/s" in line
