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

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from boomerang.store.models import AccountStatus, LegRole, ReservationState
from boomerang.store.types import from_micro_units, to_micro_units
from rating import ledger, queries
from rating.decisions import Decision, Grant, Reason, RunningLeg, Talking, common_end, decide, refuse
from rating.ledger import LockedAccount
from rating.prefix_index import RateEntry
from rating.pricing import Leg, max_duration
from rating.tariff_cache import TariffCache, price_of

DEFAULT_CHUNK_SECONDS = 60  # talk time added by each extension
FIRST_CHUNK_SECONDS = 30  # talk time reserved before a leg is placed (at least its first increment)
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


def tariff_for(account: LockedAccount, role: LegRole) -> int | None:
    """Leg A (the call back to the customer) may have its own tariff; leg B uses the account's."""
    if role is LegRole.A and account.callback_tariff_id is not None:
        return account.callback_tariff_id
    return account.tariff_id


def reservation_of(session: Session, leg_id: str) -> Row | None:
    """The leg's reservation in any state, as a row of queries.RESERVATION_COLUMNS."""
    return queries.run(session, queries.RESERVATION_OF_LEG, {"leg_id": leg_id}).one_or_none()


def _holding(session: Session, account_id: int, now: datetime, also: Sequence[str] = ()) -> list[Row]:
    """The account's reservations holding credit at `now`, and those of legs `also` if active."""
    if also:
        return queries.run(session, queries.HOLDING_OR_LEGS, {"account_id": account_id, "now": now, "legs": also}).all()
    return queries.run(session, queries.HOLDING, {"account_id": account_id, "now": now}).all()


def _credit(account: LockedAccount, holding: Sequence[Row]) -> Credit:
    reserved = sum((r.amount for r in holding), Decimal(0))
    return Credit(account.balance, account.credit_limit, reserved, len({r.session_id for r in holding}))


def credit(session: Session, account_id: int, now: datetime) -> Credit:
    """The account's balance, credit limit, reserved amount and calls (read without a lock)."""
    account = ledger.peek(session, account_id)
    if account is None:
        raise CreditError(f"no account with id {account_id}")
    return _credit(account, _holding(session, account_id, now))


def _elapsed(session: Session, leg_ids: Sequence[str], now: datetime) -> dict[str, int]:
    """Whole seconds each answered leg has talked by `now` (as it would be billed if it ended now)."""
    if not leg_ids:
        return {}
    rows = queries.run(session, queries.ANSWER_TIMES, {"legs": list(leg_ids)})
    return {leg_id: max(0, int((now - answered).total_seconds())) for leg_id, answered in rows if answered}


def _assess(
    session: Session,
    cache: TariffCache,
    account: LockedAccount,
    number: str,
    role: LegRole,
    call_id: str | None,
    now: datetime,
    holding: Sequence[Row | _Held],
    kept: int = 0,
) -> tuple[Decision, int]:
    """The decision for a new leg, and the credit it may take, in micro-units: the account's free
    credit, plus the standby its call holds for it, less `kept` (a standby the new leg is to hold)."""
    same_call = {r.leg_id: r for r in holding if r.session_id == call_id}
    standby = sum(to_micro_units(r.standby) for r in same_call.values())
    free = to_micro_units(_credit(account, holding).free) + standby - kept
    if account.status is not AccountStatus.ACTIVE:
        return refuse(Reason.ACCOUNT_SUSPENDED), free
    ongoing = {r.session_id for r in holding}
    if call_id not in ongoing and len(ongoing) >= account.max_concurrent_calls:
        return refuse(Reason.TOO_MANY_CALLS), free
    tariff_id = tariff_for(account, role)
    rate = cache.get(session, tariff_id).lookup(number, now) if tariff_id is not None else None
    if not same_call:
        return decide(rate, free), free
    # Legs of this call already up (leg A when B is dialled) run alongside the new one.
    terms = queries.run(session, queries.RESERVATIONS_OF_LEGS, {"legs": list(same_call)}).all()
    talked = _elapsed(session, list(same_call), now)
    running = [
        RunningLeg(
            Leg(price_of(r), talked.get(r.leg_id, 0)),
            to_micro_units(same_call[r.leg_id].amount - same_call[r.leg_id].standby),
        )
        for r in terms
    ]
    return decide(rate, free, running), free


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
    account = ledger.peek(session, account_id)
    if account is None:
        raise CreditError(f"no account with id {account_id}")
    holding = _holding(session, account_id, now)
    decision, _ = _assess(session, cache, account, number, role, call_id, now, holding)
    return decision


def _grant(row: Row, added: int) -> Grant:
    return Grant(row.leg_id, row.granted_seconds, added, row.amount, row.expires_at)


def _rate_entry(session: Session, row: Row) -> RateEntry:
    """The rate a reservation was made at, as it was then."""
    since = row.created_at
    if row.rate_id is not None:
        since = queries.run(session, queries.RATE_SINCE, {"rate_id": row.rate_id}).scalar() or since
    return RateEntry(row.rate_id, row.prefix, row.destination, since, price_of(row))


def reserve(
    session: Session,
    cache: TariffCache,
    leg_id: str,
    *,
    now: datetime,
    seconds: int = FIRST_CHUNK_SECONDS,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    standby: bool = False,
) -> Decision:
    """Authorize the leg (a CallLeg row, not yet placed) and reserve credit for its first chunk.

    The first chunk is `seconds` of talk, and never less than the leg's first billed increment
    (connect fee and minimum included): no leg is placed without the credit for its first
    increment. Small first chunks let concurrent calls of one account share its credit fairly; the
    call controller extends the reservation as the leg talks.

    The leg is priced at the rate in force now for its number, in the tariff of its role; the
    price is kept on the reservation, so the call keeps it. Refused legs get a Decision with a
    reason and reserve nothing. Reserving a leg that already holds an active reservation returns
    that reservation unchanged, so a retried request reserves once.

    `standby`: for leg A of a callback whose destination is not known yet, also hold what the
    first increment of the cheapest destination of the account's tariff costs, so that a caller
    let in can reach a destination; leg B takes it over when it is reserved.
    """
    [decision] = reserve_many(
        session, cache, [leg_id], now=now, seconds=seconds, ttl_seconds=ttl_seconds,
        standby=[leg_id] if standby else (),
    )  # fmt: skip
    return decision


@dataclass
class _Held:
    """An active, unexpired reservation of an account, as a batch sees it (including those the
    batch made itself)."""

    leg_id: str
    session_id: str
    amount: Decimal
    standby: Decimal = Decimal(0)
    reservation_id: int | None = None  # None: made by this batch


def _standby_micro(session: Session, cache: TariffCache, account: LockedAccount, now: datetime) -> int | None:
    """What a callback of the account holds for its unknown destination; None if nothing is rated."""
    tariff_id = tariff_for(account, LegRole.B)
    return cache.get(session, tariff_id).cheapest_start(now) if tariff_id is not None else None


def reserve_many(
    session: Session,
    cache: TariffCache,
    leg_ids: Sequence[str],
    *,
    now: datetime,
    seconds: int = FIRST_CHUNK_SECONDS,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    standby: Collection[str] = (),
) -> list[Decision]:
    """`reserve` for several legs in the caller's transaction, one Decision per leg, in order;
    `standby` names the legs that also hold credit for their call's destination.

    The legs' accounts are locked together (in id order) and the legs decided one after the
    other, each seeing the credit and the calls the previous ones took: the same decisions as
    reserving them one at a time, for a handful of statements in all. A call controller with many
    calls starting at once reserves them this way.
    """
    if seconds < 1:
        raise ValueError("a reservation is for at least one second")
    wanted = list(dict.fromkeys(leg_ids))
    if not wanted:
        return []
    legs = {row.leg_id: row for row in queries.run(session, queries.LEGS_WITH_RESERVATION, {"legs": wanted})}
    for leg_id in wanted:
        if leg_id not in legs:
            raise CreditError(f"no leg {leg_id}")
        if legs[leg_id].account_id is None:
            raise CreditError(f"leg {leg_id} belongs to no account")
    owners = sorted({leg.account_id for leg in legs.values()})
    locked = queries.run(session, queries.LOCK_ACCOUNTS, {"account_ids": owners})
    accounts = {row.id: LockedAccount(*row) for row in locked}
    holding: dict[int, list[_Held]] = {account_id: [] for account_id in owners}
    for row in queries.run(session, queries.HOLDING_OF_ACCOUNTS, {"account_ids": owners, "now": now}):
        holding[row.account_id].append(_Held(row.leg_id, row.session_id, row.amount, row.standby, row.reservation_id))

    decisions: dict[str, Decision] = {}
    new_rows: list[dict] = []
    for leg_id in wanted:
        leg, account = legs[leg_id], accounts[legs[leg_id].account_id]
        held = holding[account.id]
        if any(item.leg_id == leg_id for item in held):
            row = reservation_of(session, leg_id)
            decisions[leg_id] = Decision(True, row.granted_seconds, None, _rate_entry(session, row), _grant(row, 0))
            continue
        if leg.reservation_id is not None:  # it expired or was closed: it never holds credit again
            raise CreditError(f"leg {leg_id} already has a reservation: extend or settle it")
        if any(item.reservation_id is None and item.session_id == leg.session_id for item in held):
            # A leg of the same call reserved just now: `_assess` reads the terms of the call's
            # legs from the database, so write what this batch made so far first.
            _insert_reservations(session, new_rows)
            new_rows = []
        kept = 0
        if leg_id in standby:
            kept = _standby_micro(session, cache, account, now)
            if kept is None:  # nothing could be called: not worth calling the customer back
                decisions[leg_id] = refuse(Reason.NO_RATE)
                continue
        decision, free = _assess(session, cache, account, leg.number, leg.role, leg.session_id, now, held, kept)
        decisions[leg_id] = decision
        if not decision.allowed:
            continue
        rate, price = decision.rate, decision.rate.price
        first = max(seconds, price.first_billed_seconds)
        granted = min(first, decision.max_seconds, max_duration((Leg(price),), free))
        amount = price.cost(granted) + from_micro_units(kept)
        grant = Grant(leg_id, granted, granted, amount, now + timedelta(seconds=ttl_seconds))
        decisions[leg_id] = Decision(True, decision.max_seconds, None, rate, grant)
        for item in held:  # the standby the call's leg A held for this leg is this leg's now
            if item.session_id == leg.session_id and item.standby:
                _drop_standby(session, item, now)
        held.append(_Held(leg_id, leg.session_id, amount, from_micro_units(kept)))
        new_rows.append(_reservation_row(account.id, leg.session_id, grant, rate, now, held[-1].standby))
    _insert_reservations(session, new_rows)
    return [decisions[leg_id] for leg_id in leg_ids]


def _drop_standby(session: Session, item: _Held, now: datetime) -> None:
    if item.reservation_id is None:
        raise CreditError(f"leg {item.leg_id} and a leg of its call cannot be reserved in one batch with a standby")
    queries.run(session, queries.DROP_STANDBY, {"reservation_id": item.reservation_id, "now": now})
    item.amount -= item.standby
    item.standby = Decimal(0)


def _reservation_row(
    account_id: int, session_id: str, grant: Grant, rate: RateEntry, now: datetime, standby: Decimal
) -> dict:
    price = rate.price
    return {
        "account_id": account_id,
        "session_id": session_id,
        "leg_id": grant.leg_id,
        "state": ReservationState.ACTIVE,
        "granted_seconds": grant.granted_seconds,
        "amount": grant.amount,
        "standby": standby,
        "expires_at": grant.expires_at,
        "rate_id": rate.rate_id,
        "prefix": rate.prefix,
        "destination": rate.destination,
        "price_per_minute": price.per_minute,
        "connect_fee": price.connect_fee,
        "initial_increment": price.initial_increment,
        "subsequent_increment": price.subsequent_increment,
        "minimum_duration": price.minimum_duration,
        "grace_seconds": price.grace_seconds,
        "rounding_mode": price.rounding,
        "rounding_digits": price.rounding_digits,
        "created_at": now,
        "updated_at": now,
    }


def _insert_reservations(session: Session, rows: list[dict]) -> None:
    if not rows:
        return
    try:
        queries.run(session, queries.INSERT_RESERVATION, rows)
    except IntegrityError:
        # A leg got a reservation since its legs were read: another transaction reserved it.
        legs = ", ".join(row["leg_id"] for row in rows)
        raise CreditError(f"leg {legs} already has a reservation: extend or settle it") from None


def extend(
    session: Session,
    leg_ids: Sequence[str],
    *,
    now: datetime,
    seconds: int = DEFAULT_CHUNK_SECONDS,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> list[Grant]:
    """Move the common end of the legs of one call up to `seconds` later, from free credit.

    The legs of a call end together: the call's end is the earliest of its legs' (answer + granted
    seconds), and extending moves it to the latest moment, at most `seconds` later, whose cost for
    all the legs fits what they hold plus the free credit; each leg is then granted up to that
    moment (a leg granted beyond it, such as leg A before leg B answered, gives the excess back).
    A leg not answered yet counts as answering now. `added_seconds` is how far the end moved, the
    same for every leg; 0: cut the call at its end.

    An expired reservation is extended only if its whole amount fits the free credit again; the
    legs of a suspended account are not extended. The expiry moves on from `now`, except for an
    expired reservation that could not be revived. A standby stays held.
    """
    wanted = list(dict.fromkeys(leg_ids))
    if not wanted:
        return []
    # Read before the lock: only a reservation's terms are used from here, and they never change.
    found = {row.leg_id: row for row in queries.run(session, queries.RESERVATIONS_OF_LEGS, {"legs": wanted})}
    if len(found) != len(wanted):
        raise CreditError("a leg to extend has no reservation")
    if len({row.account_id for row in found.values()}) != 1:
        raise CreditError("legs extended together belong to one account")
    account = ledger.lock(session, next(iter(found.values())).account_id)
    rows = _holding(session, account.id, now, also=wanted)
    by_leg = {row.leg_id: row for row in rows}
    for leg_id, row in found.items():
        if leg_id not in by_leg:  # closed since: a closed reservation never reopens
            raise CreditError(f"the reservation of leg {leg_id} is {ReservationState(row.state).value}")
    holding = [row for row in rows if row.expires_at > now]
    mine = [by_leg[leg_id] for leg_id in wanted]
    prices = [price_of(found[row.leg_id]) for row in mine]
    # What these legs may spend on talk in total: the free credit plus what they already hold (an
    # expired reservation holds nothing any more), less the standby, which waits for leg B.
    budget = to_micro_units(_credit(account, holding).free)
    budget += sum(to_micro_units(row.amount) for row in mine if row.expires_at > now)
    budget -= sum(to_micro_units(row.standby) for row in mine)
    if sum(price.cost_micro(row.granted_seconds) for row, price in zip(mine, prices, strict=True)) > budget:
        return [_grant(row, 0) for row in mine]  # expired, and its credit is gone meanwhile
    answered = dict(queries.run(session, queries.ANSWER_TIMES, {"legs": wanted}).all())
    starts = [answered.get(row.leg_id) or now for row in mine]
    first = min(starts)
    offsets = [int((start - first).total_seconds()) for start in starts]
    talking = [
        Talking(price, offset, row.granted_seconds) for price, offset, row in zip(prices, offsets, mine, strict=True)
    ]
    end = min(leg.offset + leg.granted for leg in talking)
    if account.status is AccountStatus.ACTIVE:
        reachable = common_end(talking, budget, latest=end + seconds)
    else:
        reachable = None
    expires_at = now + timedelta(seconds=ttl_seconds)
    grants = []
    for row, leg in zip(mine, talking, strict=True):
        if reachable is not None and reachable > end:
            granted, added = reachable - leg.offset, reachable - end
        else:
            granted, added = row.granted_seconds, 0
        grant = Grant(row.leg_id, granted, added, leg.price.cost(granted) + row.standby, expires_at)
        changes = {"new_granted": granted, "new_amount": grant.amount, "new_expiry": expires_at, "now": now}
        queries.run(session, queries.EXTEND_RESERVATION, {"reservation_id": row.reservation_id, **changes})
        grants.append(grant)
    return grants


def renew(
    session: Session, leg_ids: Sequence[str], *, now: datetime, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> list[Grant] | None:
    """Keep the legs' reservations holding credit for `ttl_seconds` more, as they are (a call
    reserved when it was asked for, placed later): their grants; None when one had expired and its
    credit went to other calls meanwhile: the call cannot be placed."""
    grants = extend(session, leg_ids, now=now, seconds=0, ttl_seconds=ttl_seconds)
    return grants if all(grant.expires_at > now for grant in grants) else None


def close(session: Session, reservation_id: int, state: ReservationState, now: datetime) -> bool:
    """Settle or release an active reservation; the caller holds its account's lock."""
    changes = {"reservation_id": reservation_id, "new_state": state, "now": now}
    return queries.run(session, queries.CLOSE_RESERVATION, changes).rowcount == 1


def release(session: Session, leg_id: str, *, now: datetime) -> bool:
    """Give back an unused reservation (the leg was not answered). False if none was active."""
    found = reservation_of(session, leg_id)
    if found is None:
        return False
    ledger.lock(session, found.account_id)  # the reservation changes only under its account's lock
    return close(session, found.reservation_id, ReservationState.RELEASED, now)
