"""`boomerang tariff ...`: tariffs and their rates (CSV, format in rating/rates_csv.py)."""

from __future__ import annotations

import sys

from boomerang import provisioning
from boomerang.cli.context import CommandContext


def register(groups) -> None:
    tariff = groups.add_parser("tariff", help="tariffs and rates").add_subparsers(
        dest="command", metavar="ACTION", required=True
    )
    create = tariff.add_parser("create", help="create an empty tariff")
    create.add_argument("name")
    create.add_argument("--currency", required=True)
    create.add_argument("--description", default="")
    create.set_defaults(handler=create_tariff)
    tariff.add_parser("list", help="all tariffs").set_defaults(handler=list_tariffs)
    imports = tariff.add_parser("import", help="add or replace rates from a CSV file ('-' for stdin)")
    imports.add_argument("name")
    imports.add_argument("file")
    imports.set_defaults(handler=import_rates)
    export = tariff.add_parser("export", help="write a tariff's rates as CSV to stdout")
    export.add_argument("name")
    export.set_defaults(handler=export_rates)


def create_tariff(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        provisioning.create_tariff(session, args.name, args.currency, args.description)
    print(f"tariff {args.name} created", file=ctx.out)
    return 0


def list_tariffs(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        rows = [[t.name, t.currency, count, t.description] for t, count in provisioning.tariffs(session)]
    ctx.table(["name", "currency", "rates", "description"], rows)
    return 0


def _read_csv(path: str, ctx: CommandContext) -> str:
    if path == "-":
        return ctx.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise provisioning.InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise provisioning.InvalidInput(f"{path} is not UTF-8 text") from None


def import_rates(args, ctx: CommandContext) -> int:
    text = _read_csv(args.file, ctx)
    with ctx.transaction() as session:
        added, replaced = provisioning.import_rates(session, args.name, text)
    print(f"tariff {args.name}: {added} rates added, {replaced} replaced", file=ctx.out)
    return 0


def export_rates(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        text = provisioning.export_rates(session, args.name)
    (ctx.out or sys.stdout).write(text)
    return 0
