"""README.md's examples are tests: every fenced Python block and every shell command runs as written.

How each kind of README content is exercised (a command that fits none of these rules fails the test, so
a new README command needs a rule here):

* a ``python`` block preceded by ``<!-- readme-test: file NAME -->`` is a file the user saves: it is
  written to a scratch folder before anything runs; any other ``python`` block runs as a script there;
* a ``bash`` block preceded by ``<!-- readme-test: in order -->`` reads earlier commands' output: each
  of its commands runs after the ones above it; a trailing ``\`` continues a command on the next line;
* a plain block whose lines start with ``$ eqbench`` shows a command and its output: the command runs and
  must exit 0 (its figures are Monte-Carlo estimates, so the output itself is not compared);
* the ``json`` block showing the ``eqbench check --json`` layout must name the header fields
  :func:`eqbench.provenance.run_header` writes and parse as JSON;
* every line of a ``bash`` block is a command, run with ``bash -c`` in the scratch folder (the repository on
  ``PYTHONPATH``, this interpreter's ``bin`` first on ``PATH``) and expected to exit 0, or 1 where its
  comment says it exits 1. Commands of one block run in order when a later one uses an earlier one's output;
* training commands run with the smoke settings the README gives (``for a smoke run ... add `...```), on
  generated ``.amat`` rows for the rotated-MNIST command (``PATH/TO/...`` is the user's data folder);
* the install and test commands are what CI runs (``.ci/run`` has them verbatim); other ``pip install``
  commands need the network, so their arguments are checked with pip's own parser; the QM9 command needs
  the optional ``qm9pack`` package and is skipped (with that reason) where it is not installed;
* the cluster commands (``ray start``, ``ray get-auth-token``, ``export RAY_AUTH_TOKEN``, and eqbench
  commands with ``--address A:6379``) need a second machine: the ``ray`` subcommands must exist (their
  ``--help`` runs) and the eqbench commands must parse with eqbench's own parser;
* ``eqbench bench`` commands and reports of ``~/.local/share/eqbench/benchmarks`` record and read asv history
  of real commits: ``tests/test_bench.py`` runs them on two commits of a fresh clone (slow), and this test
  checks that it covers each of them; ``eqbench report --out reports/example`` runs in a scratch
  clone of the repository (the history's commits must be in it) holding this checkout's example inputs
  (``reports/inputs``, ``reports/training``), so the tracked report is untouched;
* ``python -m suites.X`` commands run in their ``--quick`` mode (as README.md says) in the benchmark smoke
  tests (``test_benchmarks_smoke.py``, ``test_lieconv_benchmark_smoke.py``, ``test_fa_ratios.py``); this test
  checks that one covers each of them rather than running them twice.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"
FILE_MARK = re.compile(r"<!-- readme-test: file (\S+) -->\s*$")
ORDER_MARK = "<!-- readme-test: in order -->"
CLUSTER_ADDRESS = "A:6379"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
ROTMNIST_PLACEHOLDER = "PATH/TO/mnist_rotation_new"
#: Commands slower than a few seconds (training, sweeps, asv) run only with the ``slow`` tests (CI runs them).
SLOW = ("eqbench train", "torchrun", "eqbench sweep", "asv run", "--seeds", "eqbench campaign", "--out reports/example", "eqbench check --seed 0")


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    file_name: str | None
    line: int
    in_order: bool = False


@dataclass(frozen=True)
class Command:
    text: str
    comment: str
    block: int
    line: int

    @property
    def expected_status(self) -> int:
        return 1 if re.search(r"exits? 1\b|exit status 1\b", self.comment) else 0


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = FILE_MARK.search(before)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group(1), match.group(2), marker.group(1) if marker else None, line, before.strip() == ORDER_MARK))
    return blocks


def readme_commands(blocks: list[Block]) -> list[Command]:
    commands = []
    for index, block in enumerate(blocks):
        shown = block.language == "" and any(line.startswith("$ eqbench") for line in block.text.splitlines())
        if block.language != "bash" and not shown:
            continue
        pending, first = "", 0
        for offset, raw in enumerate(block.text.splitlines(), start=1):
            if shown:
                if raw.startswith("$ "):
                    commands.append(Command(raw[2:].strip(), "", index, block.line + offset))
                continue
            command, _, comment = raw.partition("  #")
            if not pending:
                first = offset
            if command.rstrip().endswith("\\"):
                pending += command.rstrip()[:-1] + " "
                continue
            command, pending = pending + command.strip(), ""
            if command.strip():
                commands.append(Command(" ".join(command.split()), comment.strip(), index, block.line + first))
    return commands


BLOCKS = readme_blocks(README.read_text())
COMMANDS = readme_commands(BLOCKS)


def smoke_settings() -> list[str]:
    """The training smoke settings README.md states ("for a smoke run of any of them add `...`")."""
    match = re.search(r"for a smoke run of any of them add `([^`]+)`", README.read_text().replace("\n", " "))
    assert match, "README.md no longer states the smoke settings of its training commands"
    return shlex.split(match.group(1))


def environment() -> dict[str, str]:
    bin_folder = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PATH": os.pathsep.join([bin_folder, os.environ.get("PATH", "")]),
        "OMP_NUM_THREADS": "1",
    }


def run_shell(command: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env or environment(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A user's folder holding the files README.md tells them to save."""
    for block in BLOCKS:
        if block.file_name is not None:
            (tmp_path / block.file_name).write_text(block.text)
    return tmp_path


def write_amat_folder(folder: Path) -> Path:
    """A few rows in the published rotated-MNIST layout (784 pixels, then the label) under the published names."""
    from eqbench.tasks import rotmnist

    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, rows in ((rotmnist.TRAIN_FILE, 80), (rotmnist.TEST_FILE, 80)):
        pixels, labels = rng.random((rows, rotmnist.PIXELS)), rng.integers(0, 10, rows)
        lines = (" ".join(f"{v:.6e}" for v in row) + f" {float(label):.6e}" for row, label in zip(pixels, labels))
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def quick_smoke_tests(module: str) -> list[str]:
    """The test files that run the ratio script ``suites.NAME`` in its ``--quick`` mode."""
    name = module.removeprefix("suites.")
    found = []
    for path in Path(__file__).parent.glob("test_*.py"):
        source = path.read_text()
        if path.name != Path(__file__).name and "--quick" in source and (f'"{module}"' in source or f"from suites import {name}" in source):
            found.append(path.name)
    return found


def check_pip_arguments(command: str) -> None:
    """Parse a ``pip install ...`` command with pip's own option parser (no network): unknown options fail."""
    from pip._internal.commands import create_command

    arguments = shlex.split(command)
    assert arguments[:2] == ["pip", "install"], command
    options, requirements = create_command("install").parse_args(arguments[2:])
    assert requirements or options.editables, command


def check_cluster_command(text: str) -> None:
    """A command of the cluster example: ``ray`` subcommands exist, eqbench commands parse (module docstring)."""
    if text.startswith("export RAY_AUTH_TOKEN="):
        return
    if text.startswith("ray "):
        subcommand = text.split()[1]
        done = run_shell(f"ray {subcommand} --help", ROOT)
        assert done.returncode == 0, f"ray has no subcommand {subcommand!r}: {done.stderr[-2000:]}"
        return
    from eqbench.cli.main import build_parser

    arguments = shlex.split(text)
    assert arguments[0] == "eqbench", text
    parsed = build_parser().parse_args(arguments[1:])
    assert parsed.address == CLUSTER_ADDRESS, text


def covered_by_bench_test(text: str) -> bool:
    """Whether ``tests/test_bench.py`` runs each eqbench subcommand of ``text`` (record, compare, report of the history)."""
    source = (Path(__file__).parent / "test_bench.py").read_text()
    wanted = {"record": '"record"', "compare": '"compare"', "--asv-results": '"--asv-results"'}
    return all(quoted in source for word, quoted in wanted.items() if word in text)


def run_command(command: Command, scratch: Path) -> None:
    """Run one README command by the module docstring's rules."""
    text = command.text
    if text.startswith("python3 -m venv") or text == "python -m pytest -q -n 2":
        ci = CI_SCRIPT.read_text()
        for part in text.split(" && "):
            if not part.startswith(("python3 -m venv", ". .venv/bin/activate")):
                assert part in ci, f"{part!r} is in README.md but .ci/run (what CI runs) does not run it"
        return
    if text.startswith("pip install") and "eqbench train qm9" in text:
        pip_part, _, text = text.partition(" && ")
        check_pip_arguments(pip_part)
        if importlib.util.find_spec("qm9pack") is None:
            pytest.skip("the optional dependency qm9pack is not installed (pip install -e '.[qm9]')")
    elif text.startswith("pip install"):
        for part in text.split(" && "):
            check_pip_arguments(part)
        return
    if CLUSTER_ADDRESS in text or text.startswith(("ray ", "export RAY_AUTH_TOKEN")):
        check_cluster_command(text)
        return
    if text.startswith("eqbench bench") or " eqbench bench " in text or "~/.local/share/eqbench/benchmarks" in text:
        assert covered_by_bench_test(text), f"tests/test_bench.py does not run {text!r}"
        return
    if text.startswith("python -m suites."):
        module = text.split()[2]
        assert quick_smoke_tests(module), f"no test under tests/ runs {module} --quick"
        return
    env = environment()
    env["XDG_CACHE_HOME"] = str(scratch / "user-cache")  # campaigns cache under the user's cache folder
    if text.startswith("eqbench report --out reports/example"):  # in a clone: the history's commits, the tracked report untouched
        clone = scratch / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True, timeout=300)
        for part in ("inputs", "training"):  # the example inputs as this checkout has them
            shutil.rmtree(clone / "reports" / part, ignore_errors=True)
            shutil.copytree(ROOT / "reports" / part, clone / "reports" / part)
        scratch = clone
    if text.startswith(("eqbench train", "torchrun")) or " eqbench train " in text:
        text = text.replace(ROTMNIST_PLACEHOLDER, str(write_amat_folder(scratch / "amat")))
        extra = smoke_settings() + ["--out", str(scratch / "runs"), "--quiet"]
        if "rotmnist" in text:
            extra += ["-o", "data.full_files=False"]
        text = f"{text} {shlex.join(extra)}"
        env["EQBENCH_CACHE"] = str(scratch / "cache")
    if "asv run" in text:
        env["HOME"] = str(scratch)  # asv keeps its machine description in ~/.asv-machine.json
        done = run_shell(text.replace("$PWD", str(ROOT)), ROOT, env, timeout=1800)  # 18 benchmarks, a process each
    elif text.startswith(("eqbench ", "python -m pytest ", "python cx/", "torchrun ")) or " eqbench " in text:
        done = run_shell(text, scratch, env)
    else:
        pytest.fail(f"README.md line {command.line}: no rule in tests/test_readme.py runs {command.text!r}")
    assert done.returncode == command.expected_status, (
        f"README.md line {command.line}: {command.text!r} exited {done.returncode}, expected {command.expected_status}\n"
        f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )


def command_parameters() -> list:
    parameters = []
    for command in COMMANDS:
        marks = [pytest.mark.slow] if any(word in command.text for word in SLOW) else []
        parameters.append(pytest.param(command, id=f"line{command.line}", marks=marks))
    return parameters


@pytest.mark.parametrize("command", command_parameters())
def test_readme_command_runs_as_written(command: Command, scratch: Path) -> None:
    """Each README command, after the earlier commands of its block (a later one may use their output)."""
    for earlier in COMMANDS:
        if earlier.block == command.block and earlier.line < command.line and ("cx/" in command.text or BLOCKS[command.block].in_order):
            run_command(earlier, scratch)
    run_command(command, scratch)


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=f"line{b.line}") for b in BLOCKS if b.language == "python" and b.file_name is None]
)
def test_readme_python_block_runs_as_a_script(block: Block, scratch: Path) -> None:
    script = scratch / f"readme_line{block.line}.py"
    script.write_text(block.text)
    done = subprocess.run([sys.executable, str(script)], cwd=scratch, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README.md line {block.line}:\n{done.stdout}\n{done.stderr}"


def test_readme_json_layout_names_the_header_fields_eqbench_writes() -> None:
    from eqbench.provenance import run_header

    (block,) = [b for b in BLOCKS if b.language == "json"]
    shown = json.loads(block.text)
    assert set(shown) == set(run_header()) | {"records"}
    assert set(shown["machine"]) == set(run_header()["machine"])


def test_every_readme_command_is_collected() -> None:
    """A guard on the parser: the commands a reader sees are the ones tested."""
    texts = [c.text for c in COMMANDS]
    assert "eqbench list --plugin my_models.py" in texts and "python -m pytest -q -n 2" in texts
    assert sum(t.startswith("eqbench sweep") for t in texts) >= 6 and sum("eqbench train" in t for t in texts) >= 5
