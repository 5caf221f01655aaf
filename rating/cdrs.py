"""CDR rating: each finished leg becomes one CDR and one ledger charge, once; and re-rating.

`settle` turns a leg into its CDR, charges the account through the ledger (reference
`cdr:<leg id>`) and closes the leg's reservation, in the caller's transaction: all of it or none.
Settling a leg again returns the CDR it already has and changes nothing, so a retried or duplicated
"leg ended" event bills once (and `cdrs.leg_id` and the ledger reference are unique besides).

The price of a leg is the one on its reservation (the rate in force when it was authorized); a leg
settled without one is priced at the rate in force at its answer time.

Money invariant, which the tests check over a month of calls: a CDR's cost is rounded once, by its
rate's rule, from the exact price; its charge is exactly minus that cost; re-rating posts exactly
the difference; so for every CDR the ledger entries naming its leg add up to minus its current cost,
and the balance is exactly the sum of the account's ledger entries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, make_transient_to_detached

from boomerang.store.models import (
    Cdr,
    LedgerEntry,
    LedgerKind,
    ReservationState,
)
from rating import ledger, queries
from rating.credit import tariff_for
from rating.ledger import LockedAccount
from rating.prefix_index import PrefixIndex
from rating.pricing import Price
from rating.tariff_cache import TariffCache, load_index, price_of

RATED_BY = "rating"
NO_RATE = "no_rate"  # a CDR's unrated_reason: no rate in the account's tariff for the leg
UNRATED_PRICE = Price(Decimal(0))
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class RatingError(Exception):
    """A leg that cannot be rated: unknown, not ended, without an account or without a rate."""


def charge_reference(leg_id: str) -> str:
    return f"cdr:{leg_id}"


def rerate_reference(run_id: str, leg_id: str) -> str:
    return f"rerate:{run_id}:{leg_id}"


def talk_seconds(answered_at: datetime, ended_at: datetime) -> int:
    """Whole seconds from answer to end: the fraction of the last second is not billed, so a leg
    cut a few milliseconds after its granted time is not billed one more increment."""
    return max(0, int((ended_at - answered_at).total_seconds()))


def _index(session: Session, cache: TariffCache | None, tariff_id: int) -> PrefixIndex:
    return cache.get(session, tariff_id) if cache is not None else load_index(session, tariff_id)


def settle(
    session: Session,
    leg_id: str,
    *,
    now: datetime,
    cache: TariffCache | None = None,
    answered_at: datetime | None = None,
    ended_at: datetime | None = None,
) -> Cdr | None:
    """Rate the finished leg: its CDR and charge, once. None for a leg that was never answered
    (its reservation is released). Times default to the leg's `answered_at` and `ended_at`."""
    times = {leg_id: (answered_at, ended_at)} if answered_at or ended_at else {}
    [cdr] = settle_many(session, [leg_id], now=now, cache=cache, times=times)
    return cdr


def settle_many(
    session: Session,
    leg_ids: Sequence[str],
    *,
    now: datetime,
    cache: TariffCache | None = None,
    times: Mapping[str, tuple[datetime | None, datetime | None]] | None = None,
    skip_unowned: bool = False,
) -> list[Cdr | None]:
    """`settle` for several legs in the caller's transaction, one result per leg, in order.

    The legs' accounts are locked together (in id order); the CDRs are written in one statement,
    their charges in another, each account's balance once: a handful of statements for the
    batch. `times` overrides a leg's (answered_at, ended_at) where a value is given.
    `skip_unowned`: a leg of no account (a caller who never identified) gets None instead of an error.
    """
    wanted = list(dict.fromkeys(leg_ids))
    if not wanted:
        return []
    times = times or {}
    legs = {row.leg_id: row for row in queries.run(session, queries.LEGS, {"legs": wanted})}
    results: dict[str, Cdr | None] = {}
    for leg_id in wanted:
        if leg_id not in legs:
            raise RatingError(f"no leg {leg_id}")
        if legs[leg_id].account_id is None:
            if not skip_unowned:
                raise RatingError(f"leg {leg_id} belongs to no account")
            results[leg_id] = None
            del legs[leg_id]
    wanted = [leg_id for leg_id in wanted if leg_id in legs]
    if not wanted:
        return [results[leg_id] for leg_id in leg_ids]
    owners = sorted({leg.account_id for leg in legs.values()})
    accounts: dict[int, LockedAccount] = {}
    reservations: dict[str, Row] = {}
    locked = queries.run(session, queries.LOCK_ACCOUNTS_WITH_RESERVATIONS, {"account_ids": owners, "legs": wanted})
    for row in locked:
        if row.id not in accounts:
            accounts[row.id] = LockedAccount(*row[: len(queries.ACCOUNT_COLUMNS)])
        if row.reservation_id is not None:
            reservations[row.leg_id] = row

    # Rated already? Only then can a CDR exist: settling closes the reservation with it.
    maybe_rated = [
        leg_id
        for leg_id in wanted
        if leg_id not in reservations or reservations[leg_id].state is ReservationState.SETTLED
    ]
    if maybe_rated:
        query = select(Cdr).where(Cdr.leg_id.in_(maybe_rated)).execution_options(populate_existing=True)
        results |= {cdr.leg_id: cdr for cdr in session.execute(query).scalars()}

    new_cdrs: list[dict] = []
    charges: list[ledger.NewEntry] = []
    closing: dict[ReservationState, list[int]] = {ReservationState.SETTLED: [], ReservationState.RELEASED: []}
    for leg_id in wanted:
        if leg_id in results:
            continue
        leg, account, reservation = legs[leg_id], accounts[legs[leg_id].account_id], reservations.get(leg_id)
        answered_at, ended_at = times.get(leg_id, (None, None))
        answered_at = answered_at or leg.answered_at
        ended_at = ended_at or leg.ended_at
        if answered_at is None:
            if reservation is not None:
                closing[ReservationState.RELEASED].append(reservation.reservation_id)
            results[leg_id] = None
            continue
        values = _rated(session, cache, leg, account, reservation, answered_at, ended_at, now)
        new_cdrs.append(values)
        if values["cost"]:
            call = f"call {leg.role.value} +{leg.number} {values['destination']}, {values['duration_seconds']} s"
            charge = (LedgerKind.CHARGE, -values["cost"], charge_reference(leg_id), call[:255], RATED_BY)
            charges.append(ledger.NewEntry(account, *charge))
        if reservation is not None:
            closing[ReservationState.SETTLED].append(reservation.reservation_id)

    if new_cdrs:
        ids = queries.run(session, queries.INSERT_CDRS, new_cdrs).scalars().all()
        for cdr_id, values in zip(ids, new_cdrs, strict=True):
            # Written with Core; hand the caller the same CDR as a persistent ORM object without
            # reading it back.
            cdr = Cdr(id=cdr_id, **values)
            make_transient_to_detached(cdr)
            session.add(cdr)
            results[values["leg_id"]] = cdr
    ledger.append_all(session, charges)
    for state, reservation_ids in closing.items():
        if reservation_ids:
            changes = {"reservation_ids": reservation_ids, "new_state": state, "now": now}
            queries.run(session, queries.CLOSE_RESERVATIONS, changes)
    return [results[leg_id] for leg_id in leg_ids]


def _rated(
    session: Session,
    cache: TariffCache | None,
    leg: Row,
    account: LockedAccount,
    reservation: Row | None,
    answered_at: datetime,
    ended_at: datetime | None,
    now: datetime,
) -> dict:
    """The CDR of an answered leg, as the row to insert."""
    if ended_at is None:
        raise RatingError(f"leg {leg.leg_id} has not ended")
    if ended_at < answered_at:
        raise RatingError(f"leg {leg.leg_id} ends before it was answered")
    duration = talk_seconds(answered_at, ended_at)
    unrated_reason = None
    if reservation is not None:
        price, rate_id, destination = price_of(reservation), reservation.rate_id, reservation.destination
        # A grant is a hard end: a leg cut a moment late is not billed past what was reserved for
        # it, so the balance cannot go below its limit.
        billable = min(duration, reservation.granted_seconds)
    else:
        tariff_id = tariff_for(account, leg.role)
        entry = _index(session, cache, tariff_id).lookup(leg.number, answered_at) if tariff_id else None
        if entry is None:
            # Nothing rates it: recorded at no cost and marked, for the operator to look at,
            # rather than an error that would leave the leg and its session unsettled.
            price, rate_id, destination, unrated_reason = UNRATED_PRICE, None, "", NO_RATE
            billable = 0
        else:
            price, rate_id, destination = entry.price, entry.rate_id, entry.destination
            billable = duration
    return {
        "leg_id": leg.leg_id,
        "session_id": leg.session_id,
        "account_id": account.id,
        "role": leg.role,
        "number": leg.number,
        "destination": destination,
        "answer_time": answered_at,
        "end_time": ended_at,
        "duration_seconds": duration,
        "billed_seconds": price.billed_seconds(billable),
        "rate_id": rate_id,
        "price_per_minute": price.per_minute,
        "connect_fee": price.connect_fee,
        "cost": price.cost(billable),
        "currency": account.currency,
        "rated_at": now,
        "unrated_reason": unrated_reason,
    }


# --- re-rating -----------------------------------------------------------------------------------


@dataclass
class RerateReport:
    run_id: str
    examined: int = 0
    changed: int = 0
    already_done: int = 0  # changed by an earlier pass of the same run
    unrated: int = 0  # no rate in force for the number at its answer time: left as it was
    credited: dict[str, Decimal] = field(default_factory=dict)  # per currency; negative: charged more


def rerate(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    run_id: str,
    now: datetime,
    tariff_id: int | None = None,
    account_id: int | None = None,
    by: str = "",
) -> RerateReport:
    """Price again the CDRs answered in [start, end), at the rates in force at their answer time.

    Uses each account's tariffs for the leg's role, or `tariff_id` for every CDR. Each CDR whose
    cost changes gets its new cost and one adjustment in the ledger for the difference, referenced
    `rerate:<run id>:<leg id>`: running the same run again changes nothing. Accounts are locked one
    at a time, in id order, and their CDRs read after the lock, so two runs cannot both adjust one CDR.
    """
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"{run_id!r} is not a run id (1-64 letters, digits and ._:-, not first)")
    if start >= end:
        raise ValueError("the period to re-rate ends before it starts")
    report = RerateReport(run_id)
    in_period = (Cdr.answer_time >= start) & (Cdr.answer_time < end)
    accounts = select(Cdr.account_id).where(in_period).distinct().order_by(Cdr.account_id)
    if account_id is not None:
        accounts = accounts.where(Cdr.account_id == account_id)
    indexes: dict[int, PrefixIndex] = {}
    for owner_id in session.execute(accounts).scalars().all():
        account = ledger.lock(session, owner_id)
        cdrs = session.execute(
            select(Cdr)
            .where(in_period, Cdr.account_id == owner_id)
            .order_by(Cdr.id)
            .execution_options(populate_existing=True)
        ).scalars()
        for cdr in cdrs:
            _rerate_one(session, report, account, cdr, tariff_id, indexes, now, by)
    return report


def _rerate_one(
    session: Session,
    report: RerateReport,
    account: LockedAccount,
    cdr: Cdr,
    tariff_id: int | None,
    indexes: dict[int, PrefixIndex],
    now: datetime,
    by: str,
) -> None:
    report.examined += 1
    reference = rerate_reference(report.run_id, cdr.leg_id)
    if session.execute(select(LedgerEntry.id).where(LedgerEntry.reference == reference)).first():
        report.already_done += 1
        return
    tariff = tariff_id if tariff_id is not None else tariff_for(account, cdr.role)
    if tariff is None:
        report.unrated += 1
        return
    if tariff not in indexes:
        indexes[tariff] = load_index(session, tariff)
    entry = indexes[tariff].lookup(cdr.number, cdr.answer_time)
    if entry is None:
        report.unrated += 1
        return
    cost = entry.price.cost(cdr.duration_seconds)
    if cost == cdr.cost:
        return
    difference = cdr.cost - cost
    call = f"+{cdr.number} of {cdr.answer_time:%Y-%m-%d %H:%M}"
    description = f"re-rating {report.run_id}: call {call} {cdr.cost} -> {cost}"
    ledger.append(session, account, LedgerKind.ADJUSTMENT, difference, reference, description[:255], by or RATED_BY)
    cdr.cost = cost
    cdr.billed_seconds = entry.price.billed_seconds(cdr.duration_seconds)
    cdr.rate_id = entry.rate_id
    cdr.destination = entry.destination
    cdr.price_per_minute = entry.price.per_minute
    cdr.connect_fee = entry.price.connect_fee
    cdr.rated_at = now
    report.changed += 1
    report.credited[cdr.currency] = report.credited.get(cdr.currency, Decimal(0)) + difference
