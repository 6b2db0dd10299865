"""Record asv results for the current commit into a shared history, and compare two commits with asv's own table.

A history is one folder (default :func:`default_history_dir`; ``--history DIR`` or the
``EQBENCH_HISTORY`` variable choose another) holding

* ``results/``: asv's results folder, ``<machine>/<commit>-eqbench-py<X.Y>.json`` per recorded
  commit and ``benchmarks.json``;
* ``machine.json``: asv's machine file, written without questions (asv's defaults from
  ``platform.uname``, the machine named ``--machine`` or after the host).

Recording runs asv in this process with the checkout's ``asv.conf.json``, the running
interpreter under the stable environment name of :mod:`eqbench.bench.environment`, and
``--set-commit-hash`` of ``HEAD`` (asv keeps no results of an existing environment without it).
The history lives outside the checkout, so every clone and worktree appends to the same one.

Commits are ordered by git ancestry (``git rev-list --topo-order``), never by date: a commit and
its parent often share a timestamp.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from eqbench.bench.environment import TOOL_NAME

#: Environment variable naming the history folder (else :func:`default_history_dir`).
HISTORY_VARIABLE = "EQBENCH_HISTORY"
#: asv's default regression factor: a benchmark slower (or larger) by more than this has worsened.
DEFAULT_FACTOR = 1.10


class HistoryError(ValueError):
    """A history that cannot be recorded or compared: names the folder, commit or machine at fault."""


@dataclass(frozen=True)
class History:
    """The folders and files of one benchmark history."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def machine_file(self) -> Path:
        return self.root / "machine.json"


def default_history_dir() -> Path:
    """``$EQBENCH_HISTORY``, else ``$XDG_DATA_HOME/eqbench/benchmarks`` (``~/.local/share/eqbench/benchmarks``)."""
    if os.environ.get(HISTORY_VARIABLE):
        return Path(os.environ[HISTORY_VARIABLE]).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "eqbench" / "benchmarks"


def git(repo: Path, *args: str) -> str:
    """Output of ``git -C repo ARGS`` (stripped); a failure is a :class:`HistoryError` with git's message."""
    completed = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise HistoryError(f"git {' '.join(args)} in {repo}: {completed.stderr.strip() or 'failed'}")
    return completed.stdout.strip()


def resolve_commit(repo: Path, name: str) -> str:
    """The full hash of a commit name (``HEAD~1``, a branch, a short hash) in ``repo``."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    except HistoryError:
        raise HistoryError(f"{name!r} is not a commit of the repository at {repo}") from None


def ancestry_order(repo: Path, commits: Sequence[str]) -> list[str]:
    """``commits`` (full hashes) from oldest to newest by git ancestry (``rev-list --topo-order``).

    A parent always precedes its children; unrelated branches keep git's topological order.
    A commit the repository does not have is a :class:`HistoryError` naming it.
    """
    wanted = set(commits)
    for commit in wanted:
        if subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True, check=False).returncode != 0:
            raise HistoryError(f"commit {commit[:12]} of the history is not in the repository at {repo} (fetch it first)")
    if not wanted:
        return []
    listed = git(repo, "rev-list", "--topo-order", "--reverse", *sorted(wanted)).split()
    return [commit for commit in listed if commit in wanted]


def repository_root(path: Path | str = ".") -> Path:
    """The top folder of the git checkout containing ``path`` (it must hold ``asv.conf.json``)."""
    root = Path(git(Path(path), "rev-parse", "--show-toplevel"))
    if not (root / "asv.conf.json").is_file():
        raise HistoryError(f"{root}: no asv.conf.json (run from an eqbench checkout)")
    return root


def asv_config(repo: Path, history: History):  # -> asv.config.Config
    """The checkout's ``asv.conf.json`` with absolute paths and the history's results folder."""
    from asv.config import Config

    import eqbench.bench.environment  # noqa: F401  (registers the stable environment with asv)

    conf = Config.load(str(repo / "asv.conf.json"))
    conf.repo = str(repo)
    conf.benchmark_dir = str(repo / conf.benchmark_dir)
    conf.env_dir = str(repo / conf.env_dir)
    conf.results_dir = str(history.results)
    conf.html_dir = str(history.root / "html")
    return conf


def write_machine_file(history: History, machine: str | None) -> str:
    """Write (or update) the history's asv machine file without questions; returns the machine name.

    The fields are asv's defaults (``Machine.get_defaults``: host name, OS, CPU, core count, RAM);
    ``machine`` replaces the host name.
    """
    from asv.machine import Machine, MachineCollection

    info = Machine.get_defaults()
    info["machine"] = machine or info["machine"] or platform.node() or "localhost"
    history.root.mkdir(parents=True, exist_ok=True)
    MachineCollection.save(info["machine"], info, _path=str(history.machine_file))
    return info["machine"]


def record(repo: Path, history: History, *, quick: bool, bench: Sequence[str] = (), machine: str | None = None) -> int:
    """Run asv's benchmarks on the checkout as its ``HEAD`` commit and store them in ``history``; asv's exit code.

    ``quick`` runs every benchmark once (asv ``--quick``); ``bench`` restricts to the benchmarks
    matching these regular expressions. Uncommitted changes are measured as ``HEAD`` (a warning says so).
    """
    from asv.commands.run import Run
    from asv.console import log

    commit = resolve_commit(repo, "HEAD")
    if git(repo, "status", "--porcelain", "--untracked-files=no"):
        print(f"warning: {repo} has uncommitted changes; they are recorded as commit {commit[:8]}", file=sys.stderr)
    conf = asv_config(repo, history)
    name = write_machine_file(history, machine)
    os.environ["ASV_PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), os.environ.get("ASV_PYTHONPATH")]))
    log.enable()
    code = Run.run(
        conf, bench=list(bench) or None, quick=quick, env_spec=[f"{TOOL_NAME}:same"], set_commit_hash=commit,
        machine=name, _machine_file=str(history.machine_file), show_stderr=True, pull=False,
    )
    return int(code or 0)


def machines(history: History) -> list[str]:
    """Machines with results in the history."""
    return sorted(path.parent.name for path in history.results.glob("*/machine.json"))


def compare(repo: Path, history: History, before: str, after: str, *, factor: float = DEFAULT_FACTOR,
            machine: str | None = None) -> bool:
    """Print asv's comparison table of two commits (asv ``Compare.print_table``); True when a benchmark worsened.

    Worsened means, in asv's words, slower or larger by more than ``factor`` (and, where both
    sides kept statistics, significantly so), or failing where it ran before.
    """
    from asv.commands.compare import Compare
    from asv.console import log
    from asv.results import iter_results_for_machine

    if factor <= 1:
        raise HistoryError(f"factor must be above 1, got {factor}")
    known = machines(history)
    if not known:
        raise HistoryError(f"{history.results}: no recorded results (run `eqbench bench record` first)")
    if machine is None:
        if len(known) > 1:
            raise HistoryError(f"results of several machines ({', '.join(known)}): choose one with --machine")
        machine = known[0]
    elif machine not in known:
        raise HistoryError(f"no results of machine {machine!r} in {history.results} (have {', '.join(known)})")
    hashes = [resolve_commit(repo, name) for name in (before, after)]
    recorded = {result.commit_hash for result in iter_results_for_machine(str(history.results), machine)}
    for name, commit in zip((before, after), hashes):
        if commit not in recorded:
            raise HistoryError(f"commit {name} ({commit[:8]}) has no results of machine {machine} in {history.results}")
    log.enable()
    worsened, _ = Compare.print_table(
        asv_config(repo, history), hashes[0], hashes[1], factor=factor, split=False, machine=machine,
        commit_names={commit: name for commit, name in zip(hashes, (before, after))},
    )
    return bool(worsened)
