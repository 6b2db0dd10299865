"""Models for tests/test_campaign*.py, written into a temporary folder with MARKER filled in.

``campaign-crash`` kills its own process (SIGKILL, as the kernel's OOM killer would) while the
marker file exists; ``campaign-interrupt`` raises KeyboardInterrupt (Ctrl-C) while it exists.
``campaign-norms`` is SO(3)-invariant; ``campaign-coords`` reads one coordinate (violated).
"""
import os
import signal
from pathlib import Path

from torch import nn

from eqbench.actions import Invariant, Points
from eqbench.groups import SO3
from eqbench.inputs import PointCloudInputs
from eqbench.registry import register_model

MARKER = Path("__MARKER__")  # the tests write a real path here
QUICK = {"n_inputs": 2, "n_elements": 4, "search_examples": 3}
SETTINGS = {"group": SO3(), "in_action": Points(), "out_action": Invariant(), "inputs": PointCloudInputs(min_points=3, max_points=6), "check_options": QUICK}


class Norms(nn.Module):
    def forward(self, x):
        return x.norm(dim=-1).sum(dim=-1, keepdim=True)


class Coordinate(nn.Module):
    def forward(self, x):
        return x[..., 0].sum(dim=-1, keepdim=True)


class Crash(Norms):
    def forward(self, x):
        if MARKER.exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


class Interrupt(Norms):
    def forward(self, x):
        if MARKER.exists():
            raise KeyboardInterrupt
        return super().forward(x)


@register_model("campaign-norms", expected="exact", **SETTINGS)
def norms():
    return Norms()


@register_model("campaign-coords", expected="violated", **SETTINGS)
def coords():
    return Coordinate()


@register_model("campaign-crash", expected="exact", **SETTINGS)
def crash():
    return Crash()


@register_model("campaign-interrupt", expected="exact", **SETTINGS)
def interrupt():
    return Interrupt()
