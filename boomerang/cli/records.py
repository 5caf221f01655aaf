"""`boomerang cdr list` and `boomerang ledger list` (`cdr rerate` is in boomerang/cli/rating.py)."""

from __future__ import annotations

from boomerang import provisioning
from boomerang.cli import rating
from boomerang.cli.context import CommandContext


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100000:
        raise provisioning.InvalidInput(f"--limit {text!r}: expected 1 to 100000")
    return int(text)


def register(groups) -> None:
    cdr = groups.add_parser("cdr", help="call detail records").add_subparsers(
        dest="command", metavar="ACTION", required=True
    )
    listing = cdr.add_parser("list", help="rated calls, newest first")
    listing.add_argument("--account", help="only this account's calls")
    listing.add_argument("--limit", default="100")
    listing.set_defaults(handler=list_cdrs)
    rating.register_cdr_commands(cdr)

    ledger = groups.add_parser("ledger", help="balance changes").add_subparsers(
        dest="command", metavar="ACTION", required=True
    )
    listing = ledger.add_parser("list", help="an account's ledger entries, newest first")
    listing.add_argument("login")
    listing.add_argument("--limit", default="100")
    listing.set_defaults(handler=list_ledger)


def list_cdrs(args, ctx: CommandContext) -> int:
    limit = _limit(args.limit)
    with ctx.transaction() as session:
        rows = [
            [
                c.answer_time.isoformat(timespec="seconds"),
                c.session_id,
                c.role.value,
                f"+{c.number}",
                c.destination,
                c.duration_seconds,
                c.billed_seconds,
                c.cost,
                c.currency,
            ]
            for c in provisioning.cdrs(session, args.account, limit)
        ]
    ctx.table(["answered", "session", "leg", "number", "destination", "seconds", "billed", "cost", "currency"], rows)
    return 0


def list_ledger(args, ctx: CommandContext) -> int:
    limit = _limit(args.limit)
    with ctx.transaction() as session:
        rows = [
            [
                e.created_at.isoformat(timespec="seconds"),
                e.kind.value,
                e.amount,
                e.balance_after,
                e.reference,
                e.description,
            ]
            for e in provisioning.ledger_entries(session, args.login, limit)
        ]
    ctx.table(["time", "kind", "amount", "balance", "reference", "description"], rows)
    return 0
