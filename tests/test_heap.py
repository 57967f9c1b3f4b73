"""featviz changes glibc's malloc settings (a setting of the whole process) only when asked:
a library render in a fresh process makes no ``mallopt`` call; the command line, its own
process, asks, and so does ``hold_heap(True)``."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from featviz.cli import main
from featviz.models import speed

COUNT = """
import featviz
from featviz.models import speed

calls = []
class Recorder:
    def mallopt(self, *args): calls.append(args)
    def malloc_trim(self, *args): calls.append(("trim",))
speed._libc = lambda: Recorder()
featviz.render("efficientnet_lite0", "blocks.2:1", steps=2, size=64, progress=False)
print(len(calls))
speed.hold_heap(True)
featviz.render("efficientnet_lite0", "blocks.2:1", steps=2, size=64, progress=False)
print(len(calls))
"""


def test_a_library_render_leaves_malloc_alone_unless_asked():
    done = subprocess.run([sys.executable, "-c", COUNT], capture_output=True, text=True, timeout=300, check=True)
    library, asked = (int(n) for n in done.stdout.split())
    assert library == 0 and asked >= 4, done.stdout  # two thresholds set, two restored, a trim


def test_the_command_line_holds_the_heap(monkeypatch, tmp_path):
    calls: list[tuple[object, ...]] = []

    class Recorder:
        def mallopt(self, *args: object) -> None:
            calls.append(args)

        def malloc_trim(self, *args: object) -> None:
            calls.append(("trim",))

    before = speed.hold_heap(False)
    monkeypatch.setattr(speed, "_libc", lambda: Recorder())
    try:
        out = tmp_path / "a.png"
        result = CliRunner().invoke(
            main, ["render", "blocks.2:1", "--steps", "2", "--size", "64", "-o", str(out), "-q"]
        )
        assert result.exit_code == 0, result.output
        assert len(calls) >= 5 and ("trim",) in calls  # set for the render, restored and trimmed after
    finally:
        speed.hold_heap(before)
