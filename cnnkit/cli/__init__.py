"""The ``cnnkit`` command line. Each sub-command lives in its own module here, with an
``add_parser(subparsers)`` that declares its options and a ``run(args)`` that does the
work; this file only wires them together and turns user errors into one clear line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from cnnkit.errors import CnnkitError

# Sub-commands, in the order ``cnnkit --help`` lists them; each is cnnkit/cli/<name>.py.
COMMANDS = (
    "models",
    "summary",
    "stages",
    "train",
    "recipes",
    "predict",
    "features",
    "evaluate",
    "cv",
    "ensemble",
    "explain",
    "leakage",
    "doctor",
    "lr-find",
    "report",
    "dogapp",
    "serve",
    "export",
)


def _commands() -> list[ModuleType]:
    commands = []
    for name in COMMANDS:
        try:
            commands.append(importlib.import_module(f"cnnkit.cli.{name.replace('-', '_')}"))
        except ModuleNotFoundError as exc:  # a command not written yet
            if exc.name != f"cnnkit.cli.{name.replace('-', '_')}":
                raise
    return commands


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (problem + where to look), like ours."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from cnnkit import __version__

    parser = OneLineParser(
        prog="cnnkit",
        description="Classic CNNs for image classification: see them, train them, explain them.",
    )
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _commands():
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnkit`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 0
        return int(args.run(args) or 0)
    except CnnkitError as exc:
        print(f"cnnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
