"""eqbench.reports draws on its own Agg canvases: importing and plotting never switch the caller's matplotlib backend."""
from __future__ import annotations

import subprocess
import sys

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SCRIPT = """
import matplotlib
matplotlib.use("svg")                      # the caller's choice
import matplotlib.pyplot as plt
import eqbench.reports
from eqbench.reports.plotting import new_figure, save_png
figure, (axis,) = new_figure(2.0, 2.0)
axis.plot([0, 1], [1, 0])
save_png(figure, __import__("pathlib").Path(r"{path}"))
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""


def test_reports_keep_the_callers_backend_and_pyplot_state(tmp_path):
    path = tmp_path / "plot.png"
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(path=path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "0"]  # backend unchanged, no pyplot figure left open
    assert path.read_bytes()[:8] == PNG_MAGIC
