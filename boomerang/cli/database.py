"""`boomerang db ...`: schema migrations and demo data."""

from __future__ import annotations

from alembic.util import CommandError
from sqlalchemy.exc import OperationalError

from boomerang import demo
from boomerang.cli.context import CommandContext, DatabaseNotReady
from boomerang.provisioning import Conflict, InvalidInput
from boomerang.store import migrate


def register(groups) -> None:
    db = groups.add_parser("db", help="database schema and demo data").add_subparsers(
        dest="command", metavar="ACTION", required=True
    )
    db.add_parser("upgrade", help="migrate the schema to the current version").set_defaults(handler=upgrade)
    down = db.add_parser("downgrade", help="migrate the schema back to a revision ('base' removes it)")
    down.add_argument("revision")
    down.set_defaults(handler=downgrade)
    db.add_parser("current", help="show the schema revision").set_defaults(handler=current)
    db.add_parser("demo", help="load the demo data into an empty database").set_defaults(handler=load_demo)


def _migrating(action, *args) -> None:
    try:
        action(*args)
    except OperationalError as exc:
        raise DatabaseNotReady(f"cannot migrate the database: {exc.orig}") from None


def upgrade(args, ctx: CommandContext) -> int:
    _migrating(migrate.upgrade, ctx.settings.database_url)
    print(f"schema at {migrate.head_revision()}", file=ctx.out)
    return 0


def downgrade(args, ctx: CommandContext) -> int:
    try:
        _migrating(migrate.downgrade, ctx.settings.database_url, args.revision)
    except CommandError as exc:  # a revision that does not exist or is not below the current one
        raise InvalidInput(f"cannot downgrade to {args.revision!r}: {exc}") from None
    print(f"schema at {migrate.current_revision(ctx.engine) or 'base'}", file=ctx.out)
    return 0


def current(args, ctx: CommandContext) -> int:
    try:
        revision = migrate.current_revision(ctx.engine)
    except OperationalError as exc:
        raise DatabaseNotReady(f"cannot use the database: {exc.orig}") from None
    state = "current" if revision == migrate.head_revision() else f"behind {migrate.head_revision()}"
    print(f"{revision or 'base'} ({state})", file=ctx.out)
    return 0


def load_demo(args, ctx: CommandContext) -> int:
    with ctx.transaction() as session:
        if not demo.is_empty(session):
            raise Conflict("the database already holds accounts; demo data goes into an empty database only")
        demo.load(session, ctx.settings)
    print("demo data loaded: customer demo (password demo, PIN 4321), admin admin (password admin)", file=ctx.out)
    return 0
