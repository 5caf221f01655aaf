"""`boomerang run`: start the whole platform in the foreground."""

from __future__ import annotations

import sys

from boomerang.cli.context import CommandContext
from boomerang.supervisor import StartupError, Supervisor


def register(groups) -> None:
    groups.add_parser(
        "run", help="start rtpengine, Kamailio, the call controller and the portal; Ctrl-C stops them"
    ).set_defaults(handler=run)


def run(args, ctx: CommandContext) -> int:
    try:
        return Supervisor(ctx.settings, ctx.out).run()
    except StartupError as exc:
        print(f"boomerang: error: {exc}", file=sys.stderr)
        return 5
