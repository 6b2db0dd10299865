"""Saved counterexamples run standalone: three broken models (registered through an entry point, from a plugin
file, checked with assert_equivariant in Python) give scripts that, in a fresh process, print the error the check
printed (3 significant digits) and exit 1; after the model's source is fixed, the same scripts exit 0.

Each model reads one coordinate axis (not rotation invariant); the fix sums point norms instead. Everything runs
in subprocesses from a scratch folder, as a user would run it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BROKEN = "return x[..., 2].sum(dim=1, keepdim=True)"
FIXED = "return x.norm(dim=-1).sum(dim=1, keepdim=True)"

MODEL_CODE = f"""
import torch

class AxisReader(torch.nn.Module):
    def forward(self, x):
        {BROKEN}
"""

REGISTRATION = """
from eqbench.actions import Invariant, Points
from eqbench.groups import SO3
from eqbench.inputs import PointCloudInputs
from eqbench.registry import register_model

register_model("{name}", group=SO3(), in_action=Points(), out_action=Invariant(), inputs=PointCloudInputs(max_points=6),
               expected="exact", check_options={{"n_inputs": 2, "n_elements": 8, "search_examples": 10}})(AxisReader)
"""

ASSERT_SCRIPT = """
import sys
from eqbench.actions import Invariant, Points
from eqbench.check import EquivarianceError, assert_equivariant, save_counterexample
from eqbench.groups import SO3
from eqbench.inputs import PointCloudInputs
from axis_model import AxisReader

model = AxisReader()
try:
    assert_equivariant(model, SO3(), PointCloudInputs(max_points=6), Points(), Invariant(), n_inputs=2, n_elements=8,
                       search_examples=10)
except EquivarianceError as error:
    print(error)
    save_counterexample(error.result, sys.argv[1], model=model)
"""


def run(argv: list[str], cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*pythonpath, ROOT])), "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, text=True, timeout=240)


def shown_error(console: str) -> str:
    """The error of the counterexample the check printed."""
    return re.search(r"counterexample \((?:random|search)\): output \S+, relative error (\S+)", console).group(1)


def assert_reproduces_then_fixed(script: Path, console: str, source: Path, scratch: Path) -> None:
    first = run([sys.executable, str(script)], scratch, [])  # a fresh process, no PYTHONPATH to the model's folder
    assert first.returncode == 1, first.stdout + first.stderr
    printed = re.search(r"relative equivariance error (\S+)", first.stdout).group(1)
    assert printed == shown_error(console), (first.stdout, console)
    assert "element: rotation by" in first.stdout and "deg about" in first.stdout
    source.write_text(source.read_text().replace(BROKEN, FIXED))
    fixed = run([sys.executable, str(script)], scratch, [])
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_registered_plugin_and_python_counterexamples_reproduce_standalone_until_fixed(tmp_path):
    scratch = tmp_path / "elsewhere"
    scratch.mkdir()

    # 1. registered through the eqbench.models entry point of an installed (fake) distribution
    site = tmp_path / "site"
    (site / "axis_dist-1.0.dist-info").mkdir(parents=True)
    (site / "axis_dist-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: axis-dist\nVersion: 1.0\n")
    (site / "axis_dist-1.0.dist-info" / "entry_points.txt").write_text("[eqbench.models]\naxis = axis_models\n")
    entry_source = site / "axis_models.py"
    entry_source.write_text(MODEL_CODE + REGISTRATION.format(name="entry-axis-reader"))
    saved = tmp_path / "cx-entry"
    done = run([sys.executable, "-m", "eqbench", "check", "entry-axis-reader", "--seed", "3", "--save-counterexamples", str(saved)], tmp_path, [site])
    assert done.returncode == 1 and "0 of 1 verdicts as expected" in done.stdout, done.stdout + done.stderr
    script = saved / "entry-axis-reader-SO3.py"
    assert script.is_file() and script.with_suffix(".pt").is_file()
    assert f"python {script}" in done.stdout
    # the standalone run loads the entry point itself: it needs the distribution on the path, not the check's process
    first = run([sys.executable, str(script)], scratch, [site])
    assert first.returncode == 1 and re.search(r"error (\S+)", first.stdout.splitlines()[-1]).group(1) == shown_error(done.stdout)
    entry_source.write_text(entry_source.read_text().replace(BROKEN, FIXED))
    assert run([sys.executable, str(script)], scratch, [site]).returncode == 0

    # 2. from a plugin file
    plugin = tmp_path / "my_models.py"
    plugin.write_text(MODEL_CODE + REGISTRATION.format(name="plugin-axis-reader"))
    saved = tmp_path / "cx-plugin"
    done = run([sys.executable, "-m", "eqbench", "check", "--plugin", str(plugin), "--save-counterexamples", str(saved)], tmp_path, [])
    assert done.returncode == 1, done.stdout + done.stderr
    assert_reproduces_then_fixed(saved / "plugin-axis-reader-SO3.py", done.stdout, plugin, scratch)

    # 3. checked in Python with assert_equivariant, the model object saved by reference to its module
    code = tmp_path / "code"
    code.mkdir()
    module = code / "axis_model.py"
    module.write_text(MODEL_CODE)
    (code / "check_it.py").write_text(ASSERT_SCRIPT)
    saved = tmp_path / "cx-python"
    done = run([sys.executable, "check_it.py", str(saved)], code, [])
    assert done.returncode == 0 and "violated" in done.stdout, done.stdout + done.stderr
    assert_reproduces_then_fixed(saved / "AxisReader-SO3.py", done.stdout, module, scratch)

