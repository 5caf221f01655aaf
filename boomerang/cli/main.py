"""Entry point of the `boomerang` command.

Exit codes, for scripts:
  0 done   1 internal error   2 invalid input or usage   3 not found   4 conflict
  5 configuration or database not usable
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from boomerang import provisioning
from boomerang.cli import accounts, database, network, rating, records, run, tariffs
from boomerang.cli.context import CommandContext, DatabaseNotReady
from boomerang.settings import SettingsError, load

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_NOT_READY = 5

COMMAND_GROUPS = (database, accounts, tariffs, rating, network, records, run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boomerang",
        description="Boomerang callback platform: provisioning, database and services.",
        epilog="Exit codes: 0 done, 1 internal error, 2 invalid input, 3 not found, 4 conflict, "
        "5 configuration or database not usable.",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(groups)
    return parser


def main(argv: Sequence[str] | None = None, context: CommandContext | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits with 2 on a usage error
    try:
        context = context or CommandContext(load())
        return args.handler(args, context) or EXIT_OK
    except SettingsError as exc:
        return _fail(f"configuration: {exc}", EXIT_NOT_READY)
    except DatabaseNotReady as exc:
        return _fail(str(exc), EXIT_NOT_READY)
    except provisioning.InvalidInput as exc:
        return _fail(str(exc), EXIT_INVALID)
    except provisioning.NotFound as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except provisioning.Conflict as exc:
        return _fail(str(exc), EXIT_CONFLICT)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERNAL)


def _fail(message: str, code: int) -> int:
    print(f"boomerang: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
