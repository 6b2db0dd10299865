"""The ``eqbench`` command line: ``main.py`` dispatches to one module per subcommand."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from rich.console import Console

    from eqbench.registry import ModelEntry

#: Width of tables written to a file or pipe (rich would otherwise squeeze them to 80 columns).
PIPE_WIDTH = 200


class UsageError(Exception):
    """Bad command-line usage (unknown model, group or plugin; bad arguments): exit status 2, one line."""


def make_console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); :data:`PIPE_WIDTH` columns wide when not a terminal."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


def add_plugin_argument(parser: argparse.ArgumentParser) -> None:
    """``--plugin FILE_OR_MODULE`` (repeatable): a user's file or module that registers models."""
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="a .py file or importable module whose register_model calls add models (repeatable)",
    )


def load_models(plugins: Sequence[str]) -> list[ModelEntry]:
    """Register the builtin suite, the ``eqbench.models`` entry points and ``plugins``; returns the plugins' entries.

    A plugin or entry point that fails becomes a :class:`UsageError` naming it.
    """
    from eqbench import registry

    try:
        return registry.load_all(plugins)
    except registry.RegistryError as error:
        raise UsageError(str(error)) from error


#: The largest seed: seeds reach numpy's and hypothesis's generators, which take 32-bit seeds.
MAX_SEED = 2**32 - 1


def int_at_least(minimum: int, word: str, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for integers in ``[minimum, maximum]``; ``word`` names the range in its error ("positive")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {word} integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f" at most {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"expected a {word} integer{bound}, got {value}")
        return value

    return parse


#: ``--seed``: a seed from 0 to :data:`MAX_SEED`.
SEED = int_at_least(0, "non-negative", MAX_SEED)


def write_output(path: Path, text: str, option: str) -> None:
    """Write ``text`` to the ``option`` file ``path`` atomically; a failure is a :class:`UsageError` naming both."""
    from eqbench.atomic import write_text_atomic

    try:
        write_text_atomic(path, text)
    except OSError as error:
        raise UsageError(f"cannot write {option} {path}: {error.strerror or error}") from error
