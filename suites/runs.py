"""What the ratio scripts share around their measurements: the allocator option and the report file.

``--allocator pinned`` (the default) keeps freed memory in the process
(:func:`suites.timing.pin_allocator`) so that neither side of a ratio pays page faults by chance;
``--allocator default`` leaves glibc as it is. ``--out FILE`` writes what the script printed under
a title and the command that measured it, atomically.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from eqbench.atomic import write_text_atomic
from suites.timing import pin_allocator


def add_allocator_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allocator", choices=("pinned", "default"), default="pinned",
                        help="pinned (default): keep freed memory in the process, see suites.timing.pin_allocator")


def apply_allocator(choice: str) -> str:
    """Pin the allocator for ``"pinned"``; either way, a phrase for the output's header saying how it is set."""
    if choice == "pinned":
        return pin_allocator()
    malloc = ", ".join(f"{key}={value}" for key, value in sorted(os.environ.items()) if key.startswith("MALLOC_"))
    return f"glibc malloc {malloc or 'defaults'}"


def write_report(out: Path, title: str, module: str, argv: Sequence[str] | None, lines: Sequence[str]) -> None:
    """``# title``, ``Measured by `python -m module ARGS```, then ``lines``, written atomically to ``out``."""
    command = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
    write_text_atomic(out, f"# {title}\n\nMeasured by `{command.strip()}`.\n\n" + "\n".join(lines) + "\n")
    print(f"\nwrote {out}")
