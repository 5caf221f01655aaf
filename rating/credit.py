"""Credit control: reserve credit for legs before and while they run, so no account overdraws.

    free credit = balance + credit limit - amounts of the account's active, unexpired reservations

A leg is placed only with a reservation (`reserve`) paying at least its first billed increment. The
reservation covers a chunk of talk time, `granted_seconds`; the call controller extends it while the
leg runs (`extend`), and cuts the leg when its granted time is used up and no more was granted.
Many calls of one account share its credit this way, and none can spend credit another has
reserved. When the leg ends, rating/cdrs.py `settle` rates it, charges the ledger and closes the
reservation; an unanswered leg's reservation is released (`release`).

A reservation expires `ttl_seconds` after it was made or last extended: a call controller that
crashed cannot hold credit forever. The controller must extend (or cut the leg) before
`expires_at`; settling after expiry still charges what the leg used.

Concurrency: every operation here takes the account's row lock first (`ledger.lock_account`:
SELECT ... FOR UPDATE on MariaDB, whose READ COMMITTED reads then see the latest committed rows; on
SQLite the transaction began IMMEDIATE and is serialised whole), so checking the free credit and
reserving it are one step. The caller commits: run each operation in its own short transaction.

Concurrent calls: an account's calls are the callback sessions holding an active, unexpired
reservation; a callback with both legs up is one call. `max_concurrent_calls` 0 allows no call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from boomerang.store.models import (
    Account,
    AccountStatus,
    CallbackSession,
    CallLeg,
    LegRole,
    Rate,
    Reservation,
    ReservationState,
)
from boomerang.store.types import to_micro_units
from rating import ledger
from rating.decisions import Decision, Grant, Reason, RunningLeg, decide, refuse
from rating.prefix_index import RateEntry
from rating.pricing import Leg, max_duration
from rating.tariff_cache import TariffCache, price_of

DEFAULT_CHUNK_SECONDS = 60  # talk time reserved at once, and added by each extension
DEFAULT_TTL_SECONDS = 180  # a reservation not extended for this long stops holding credit


class CreditError(Exception):
    """An operation that cannot be done: unknown leg, leg without an account, closed reservation."""


@dataclass(frozen=True)
class Credit:
    """An account's money as credit control sees it at one moment."""

    balance: Decimal
    credit_limit: Decimal
    reserved: Decimal
    calls: int  # callback sessions holding an active reservation

    @property
    def free(self) -> Decimal:
        return self.balance + self.credit_limit - self.reserved


def tariff_for(account: Account, role: LegRole) -> int | None:
    """Leg A (the call back to the customer) may have its own tariff; leg B uses the account's."""
    if role is LegRole.A and account.callback_tariff_id is not None:
        return account.callback_tariff_id
    return account.tariff_id


def _active(session: Session, account_id: int, now: datetime) -> list[Reservation]:
    query = select(Reservation).where(
        Reservation.account_id == account_id,
        Reservation.state == ReservationState.ACTIVE,
        Reservation.expires_at > now,
    )
    return list(session.execute(query.execution_options(populate_existing=True)).scalars())


def _credit(account: Account, active: Sequence[Reservation]) -> Credit:
    reserved = sum((r.amount for r in active), Decimal(0))
    return Credit(account.balance, account.credit_limit, reserved, len({r.session_id for r in active}))


def credit(session: Session, account_id: int, now: datetime) -> Credit:
    """The account's balance, credit limit, reserved amount and calls (read without a lock)."""
    account = session.get(Account, account_id, populate_existing=True)
    if account is None:
        raise CreditError(f"no account with id {account_id}")
    return _credit(account, _active(session, account_id, now))


def _elapsed(session: Session, leg_ids: Sequence[str], now: datetime) -> dict[str, int]:
    """Whole seconds each answered leg has talked by `now` (as it would be billed if it ended now)."""
    if not leg_ids:
        return {}
    rows = session.execute(select(CallLeg.id, CallLeg.answered_at).where(CallLeg.id.in_(leg_ids)))
    return {leg_id: max(0, int((now - answered).total_seconds())) for leg_id, answered in rows if answered}


def _assess(
    session: Session,
    cache: TariffCache,
    account: Account,
    number: str,
    role: LegRole,
    call_id: str | None,
    now: datetime,
) -> tuple[Decision, Credit]:
    active = _active(session, account.id, now)
    credit_now = _credit(account, active)
    if account.status is not AccountStatus.ACTIVE:
        return refuse(Reason.ACCOUNT_SUSPENDED), credit_now
    ongoing = {r.session_id for r in active}
    if call_id not in ongoing and len(ongoing) >= account.max_concurrent_calls:
        return refuse(Reason.TOO_MANY_CALLS), credit_now
    tariff_id = tariff_for(account, role)
    rate = cache.get(session, tariff_id).lookup(number, now) if tariff_id is not None else None
    same_call = [r for r in active if r.session_id == call_id]
    talked = _elapsed(session, [r.leg_id for r in same_call], now)
    running = [RunningLeg(Leg(price_of(r), talked.get(r.leg_id, 0)), to_micro_units(r.amount)) for r in same_call]
    return decide(rate, to_micro_units(credit_now.free), running), credit_now


def authorize(
    session: Session,
    cache: TariffCache,
    account_id: int,
    number: str,
    *,
    now: datetime,
    role: LegRole = LegRole.B,
    call_id: str | None = None,
) -> Decision:
    """Would a leg to `number` (E.164 digits) be allowed now, and for how long? Reserves nothing.

    `call_id` is the callback session the leg would join: its legs already up count as running
    alongside, and it is not a new call for max_concurrent_calls. Use it to announce the maximum
    duration; `reserve` decides for real.
    """
    account = session.get(Account, account_id, populate_existing=True)
    if account is None:
        raise CreditError(f"no account with id {account_id}")
    decision, _ = _assess(session, cache, account, number, role, call_id, now)
    return decision


def _grant(reservation: Reservation, added: int) -> Grant:
    return Grant(reservation.leg_id, reservation.granted_seconds, added, reservation.amount, reservation.expires_at)


def reserve(
    session: Session,
    cache: TariffCache,
    leg_id: str,
    *,
    now: datetime,
    seconds: int = DEFAULT_CHUNK_SECONDS,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> Decision:
    """Authorize the leg (a CallLeg row, not yet placed) and reserve credit for its first chunk.

    The leg is priced at the rate in force now for its number, in the tariff of its role; the
    price is kept on the reservation, so the call keeps it. Refused legs get a Decision with a
    reason and reserve nothing. Reserving a leg that already has an active reservation returns
    that reservation unchanged, so a retried request reserves once.
    """
    if seconds < 1:
        raise ValueError("a reservation is for at least one second")
    row = session.execute(
        select(CallLeg.number, CallLeg.role, CallLeg.session_id, CallbackSession.account_id)
        .join(CallbackSession, CallbackSession.id == CallLeg.session_id)
        .where(CallLeg.id == leg_id)
    ).one_or_none()
    if row is None:
        raise CreditError(f"no leg {leg_id}")
    if row.account_id is None:
        raise CreditError(f"leg {leg_id} belongs to no account")
    account = ledger.lock_account(session, row.account_id)
    existing = _reservation(session, leg_id)
    if existing is not None:
        if existing.state is not ReservationState.ACTIVE:
            raise CreditError(f"the reservation of leg {leg_id} is {existing.state.value}")
        rate = session.get(Rate, existing.rate_id) if existing.rate_id is not None else None
        since = rate.effective_from if rate is not None else existing.created_at
        entry = RateEntry(existing.rate_id, existing.prefix, existing.destination, since, price_of(existing))
        return Decision(True, existing.granted_seconds, None, entry, _grant(existing, 0))

    decision, credit_now = _assess(session, cache, account, row.number, row.role, row.session_id, now)
    if not decision.allowed:
        return decision
    rate = decision.rate
    granted = min(seconds, decision.max_seconds, max_duration((Leg(rate.price),), credit_now.free))
    reservation = Reservation(
        account_id=account.id,
        session_id=row.session_id,
        leg_id=leg_id,
        state=ReservationState.ACTIVE,
        granted_seconds=granted,
        amount=rate.price.cost(granted),
        expires_at=now + timedelta(seconds=ttl_seconds),
        rate_id=rate.rate_id,
        prefix=rate.prefix,
        destination=rate.destination,
        price_per_minute=rate.price.per_minute,
        connect_fee=rate.price.connect_fee,
        initial_increment=rate.price.initial_increment,
        subsequent_increment=rate.price.subsequent_increment,
        minimum_duration=rate.price.minimum_duration,
        grace_seconds=rate.price.grace_seconds,
        rounding_mode=rate.price.rounding,
        rounding_digits=rate.price.rounding_digits,
        created_at=now,
        updated_at=now,
    )
    session.add(reservation)
    session.flush()
    return Decision(True, decision.max_seconds, None, rate, _grant(reservation, granted))


def _reservation(session: Session, leg_id: str) -> Reservation | None:
    query = select(Reservation).where(Reservation.leg_id == leg_id).execution_options(populate_existing=True)
    return session.execute(query).scalar_one_or_none()


def extend(
    session: Session,
    leg_ids: Sequence[str],
    *,
    now: datetime,
    seconds: int = DEFAULT_CHUNK_SECONDS,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> list[Grant]:
    """Add up to `seconds` of talk time to each of the legs, together, from free credit.

    Legs running together (both legs of a callback) are extended by the same number of seconds:
    the most, up to `seconds`, whose added cost for all of them fits the free credit. A grant with
    `added_seconds` 0 could not be extended: cut that leg when its granted time is used up.
    An expired reservation is extended only if its whole amount fits the free credit again; the
    legs of a suspended account are not extended. The expiry moves on from `now`, except for an
    expired reservation that could not be revived.
    """
    if not leg_ids:
        return []
    found = session.execute(select(Reservation.account_id).where(Reservation.leg_id.in_(leg_ids))).scalars().all()
    if len(found) != len(set(leg_ids)):
        raise CreditError("a leg to extend has no reservation")
    if len(set(found)) != 1:
        raise CreditError("legs extended together belong to one account")
    account = ledger.lock_account(session, found[0])
    reservations = [_reservation(session, leg_id) for leg_id in dict.fromkeys(leg_ids)]
    for reservation in reservations:
        if reservation.state is not ReservationState.ACTIVE:
            raise CreditError(f"the reservation of leg {reservation.leg_id} is {reservation.state.value}")
    active = _active(session, account.id, now)
    free = to_micro_units(_credit(account, active).free)
    counted = {r.id for r in active}
    # What these legs may spend in total: the free credit plus what they already hold (an expired
    # reservation holds nothing any more).
    budget = free + sum(to_micro_units(r.amount) for r in reservations if r.id in counted)
    legs = [Leg(price_of(r), r.granted_seconds) for r in reservations]
    if sum(leg.price.cost_micro(leg.elapsed) for leg in legs) > budget:
        return [_grant(r, 0) for r in reservations]  # expired, and its credit is gone meanwhile
    added = max_duration(legs, budget, cap=seconds) if account.status is AccountStatus.ACTIVE else 0
    for reservation, leg in zip(reservations, legs, strict=True):
        reservation.granted_seconds += added
        reservation.amount = leg.price.cost(reservation.granted_seconds)
        reservation.expires_at = now + timedelta(seconds=ttl_seconds)
        reservation.updated_at = now
    session.flush()
    return [_grant(r, added) for r in reservations]


def release(session: Session, leg_id: str, *, now: datetime) -> bool:
    """Give back an unused reservation (the leg was not answered). False if none was active."""
    account_id = session.execute(select(Reservation.account_id).where(Reservation.leg_id == leg_id)).scalar()
    if account_id is None:
        return False
    ledger.lock_account(session, account_id)
    reservation = _reservation(session, leg_id)
    if reservation.state is not ReservationState.ACTIVE:
        return False
    reservation.state = ReservationState.RELEASED
    reservation.updated_at = now
    session.flush()
    return True
