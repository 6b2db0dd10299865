"""An asv environment plugin: the running interpreter, named ``eqbench-py<X.Y>`` whatever its path.

asv's ``existing`` environment names itself after the interpreter's path
(``existing-py_work_main_.venv_bin_python3``), so results recorded from two checkouts or two
virtual environments land in two histories. :class:`StableEnvironment` is the same environment
(nothing installed, the benchmarks run in the given interpreter) with a name that holds only the
Python version. asv finds it through ``"plugins": [".eqbench.bench.environment"]`` in
``asv.conf.json`` and ``"environment_type": "eqbench"`` (or ``-E eqbench:same``).
"""
from __future__ import annotations

import sys

from asv import util
from asv.environment import EnvironmentUnavailable, ExistingEnvironment, get_env_name

TOOL_NAME = "eqbench"


class StableEnvironment(ExistingEnvironment):
    """asv's existing-interpreter environment under the path-free name ``eqbench-py<X.Y>``."""

    tool_name = TOOL_NAME

    def __init__(self, conf, executable, requirements, tagged_env_vars) -> None:  # noqa: ANN001  (asv's signature)
        try:  # asv reads the name while constructing, so the version comes first
            if executable == "same":
                path = sys.executable
            else:  # asv's matrix passes versions ("3.11"): the interpreter pythonX.Y on the PATH
                path = util.which(f"python{executable}" if executable[:1].isdigit() else executable)
            self._version = util.check_output([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
        except (util.ProcessError, OSError):
            raise EnvironmentUnavailable(f"no Python interpreter {executable!r}") from None
        super().__init__(conf, executable, requirements, tagged_env_vars)

    @property
    def name(self) -> str:
        return get_env_name(self.tool_name, self._version, {}, self._tagged_env_vars)


def stable_name(python_version: str) -> str:
    """The environment name asv records for ``python_version`` (``"3.11"`` -> ``"eqbench-py3.11"``)."""
    return get_env_name(TOOL_NAME, python_version, {}, {})
