"""`boomerang rate lookup` and `boomerang cdr rerate`: what a number costs, and pricing a period again."""

from __future__ import annotations

from datetime import UTC, datetime

from boomerang import provisioning
from boomerang.cli.context import CommandContext
from boomerang.numbers import InvalidNumber, to_e164
from boomerang.store.models import Tariff
from rating import cdrs
from rating.pricing import Leg, max_duration
from rating.rates_csv import ALWAYS
from rating.tariff_cache import load_index


def register(groups) -> None:
    rate = groups.add_parser("rate", help="look up rates").add_subparsers(
        dest="command", metavar="ACTION", required=True
    )
    lookup = rate.add_parser("lookup", help="the rate a tariff applies to a number, and what calls cost")
    lookup.add_argument("number", help="international format, e.g. +447700900123")
    lookup.add_argument("--tariff", required=True)
    lookup.add_argument("--at", help="moment of the call (default: now), e.g. 2027-01-01 or 2027-01-01T10:00Z")
    lookup.add_argument("--seconds", help="also show the billed seconds and cost of a call this long")
    lookup.add_argument("--credit", help="also show the longest call this amount pays for")
    lookup.set_defaults(handler=lookup_rate)


def register_cdr_commands(cdr) -> None:
    """Commands added to `boomerang cdr` (its group is boomerang/cli/records.py)."""
    rerate = cdr.add_parser("rerate", help="price the calls of a period again, posting each difference")
    rerate.add_argument("--from", dest="start", required=True, help="first answer time, e.g. 2027-01-01 (UTC)")
    rerate.add_argument("--to", dest="end", required=True, help="end of the period, excluded, e.g. 2027-02-01")
    rerate.add_argument("--tariff", help="price every call with this tariff (default: each account's)")
    rerate.add_argument("--account", help="only this account's calls")
    rerate.add_argument("--run-id", help="names the run in the ledger; repeating a run id changes nothing")
    rerate.add_argument("--dry-run", action="store_true", help="report what would change, apply nothing")
    rerate.set_defaults(handler=rerate_cdrs)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise provisioning.InvalidInput(f"{option} {text!r}: expected a date (2027-01-01) or ISO time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _seconds(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 86400:
        raise provisioning.InvalidInput(f"--seconds {text!r}: expected 0 to 86400")
    return int(text)


def lookup_rate(args, ctx: CommandContext) -> int:
    try:
        number = to_e164(args.number)
    except InvalidNumber as exc:
        raise provisioning.InvalidInput(str(exc)) from None
    at = _moment(args.at, "--at") if args.at else datetime.now(UTC)
    seconds = _seconds(args.seconds) if args.seconds is not None else None
    credit = provisioning.parse_amount(args.credit, allow_negative=True) if args.credit is not None else None
    with ctx.transaction() as session:
        tariff: Tariff = provisioning.get_tariff(session, args.tariff)
        entry = load_index(session, tariff.id).lookup(number, at)
    if entry is None:
        raise provisioning.NotFound(f"no rate for +{number} in tariff {args.tariff!r} at {at.isoformat()}")
    price = entry.price
    fields = {
        "number": f"+{number}",
        "prefix": entry.prefix,
        "destination": entry.destination,
        "currency": tariff.currency,
        "price_per_minute": price.per_minute,
        "connect_fee": price.connect_fee,
        "increments": f"{price.initial_increment}/{price.subsequent_increment}",
        "minimum_duration": price.minimum_duration,
        "grace_seconds": price.grace_seconds,
        "rounding": f"{price.rounding} {price.rounding_digits}",
        "effective_from": "always" if entry.effective_from == ALWAYS else entry.effective_from.isoformat(),
    }
    if seconds is not None:
        fields["billed_seconds"] = price.billed_seconds(seconds)
        fields["cost"] = price.cost(seconds)
    if credit is not None:
        fields["max_seconds"] = max_duration([Leg(price)], credit)
    for name, value in fields.items():
        print(f"{name}\t{value}", file=ctx.out)
    return 0


class _DryRun(Exception):
    """Raised inside the transaction of a dry run, so that nothing it did is committed."""


def rerate_cdrs(args, ctx: CommandContext) -> int:
    start, end = _moment(args.start, "--from"), _moment(args.end, "--to")
    if start >= end:
        raise provisioning.InvalidInput("--to must be after --from")
    run_id = args.run_id or f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    try:
        with ctx.transaction() as session:
            tariff_id = provisioning.get_tariff(session, args.tariff).id if args.tariff else None
            account_id = provisioning.get_account(session, args.account).id if args.account else None
            try:
                report = cdrs.rerate(
                    session,
                    start=start,
                    end=end,
                    run_id=run_id,
                    now=datetime.now(UTC),
                    tariff_id=tariff_id,
                    account_id=account_id,
                    by="cli",
                )
            except ValueError as exc:
                raise provisioning.InvalidInput(str(exc)) from None
            if args.dry_run:
                raise _DryRun
    except _DryRun:
        pass
    credited = ", ".join(f"{amount} {currency}" for currency, amount in sorted(report.credited.items())) or "nothing"
    print(
        f"{'dry run' if args.dry_run else 'run'} {run_id}: {report.examined} CDRs examined, {report.changed} changed, "
        f"{report.already_done} already done by this run, {report.unrated} without a rate; credited {credited}",
        file=ctx.out,
    )
    if args.dry_run:
        print("nothing was applied", file=ctx.out)
    return 0
