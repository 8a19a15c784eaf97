"""The ``stepwatch`` command.

Usage::

    stepwatch --version
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from stepwatch.version import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``stepwatch`` command."""
    parser = argparse.ArgumentParser(
        prog="stepwatch",
        description="OpenTelemetry instrumentation for workflow engines.",
    )
    parser.add_argument("--version", action="version", version=f"stepwatch {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``stepwatch`` command; returns the exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
