"""Building ``worldr1`` subcommands, for core and plugin commands alike (the
``worldr1_register_commands`` hook): ``--help`` that ends with examples, command groups
(``worldr1 data stats``) and subcommands that run a function."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


def examples(*lines: str) -> dict[str, Any]:
    """Keywords for ``subparsers.add_parser(...)``: the help ends with ``examples:`` and ``lines``."""
    return {
        "epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def command_group(
    subparsers: argparse._SubParsersAction[Any], name: str, help: str
) -> argparse._SubParsersAction[Any]:
    """``worldr1 NAME SUBCOMMAND``: adds command ``name`` whose subcommand is required and
    returns the collection to add its subcommands to (the chosen one is ``args.NAME_command``)."""
    group: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def add_command(
    subparsers: argparse._SubParsersAction[Any],
    name: str,
    func: Callable[[argparse.Namespace], int | None],
    help: str,
    example_lines: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """Subcommand ``name`` that runs ``func(args)`` (it returns the exit code); its ``--help``
    ends with ``example_lines``. Returns the subcommand's parser, to add its arguments to."""
    extra = examples(*example_lines) if example_lines else {}
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, **extra)
    parser.set_defaults(func=func)
    return parser
