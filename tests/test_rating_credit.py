"""Credit control on SQLite and MariaDB: decisions, reservations in chunks, extension, expiry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from boomerang import provisioning
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import AccountStatus, CallLeg, LedgerKind, LegRole, Reservation, ReservationState
from rating import cdrs, credit, ledger
from rating.credit import CreditError, Reason
from rating.tariff_cache import TariffCache
from tests.conftest import mariadb_database
from tests.ratingkit import (
    CALLBACK,
    T0,
    UK_LANDLINE,
    UK_MOBILE,
    US,
    active_reservations,
    balance,
    ledger_sum,
    make_account,
    make_tariff,
    new_call,
    new_leg,
)

RETAIL = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment\n"
    "44,United Kingdom,0.10,0,60,60\n"
    "447,United Kingdom mobile,0.20,0,60,60\n"
    "1,US and Canada,0.05,0,30,6\n"
)
FRANCE = "33612345678"


@pytest.fixture
def cache() -> TariffCache:
    return TariffCache(check_interval=0)  # every lookup sees the latest rates


@pytest.fixture
def tariffs(db) -> None:
    with transaction(db) as session:
        make_tariff(session, "retail", RETAIL)
        make_tariff(session, "callback", CALLBACK)


def account(db, login="alice", **fields) -> int:
    fields.setdefault("tariff", "retail")
    with transaction(db) as session:
        return make_account(session, login, **fields)


def leg(db, account_id: int, number: str, *, call_id: str | None = None, role=LegRole.B, answered_at=None) -> str:
    with transaction(db) as session:
        call_id = call_id or new_call(session, account_id)
        return new_leg(session, call_id, number, role, answered_at, sequence=0 if role is LegRole.A else 1)


def reserve(db, cache, leg_id: str, now=T0, **options) -> credit.Decision:
    with transaction(db) as session:
        return credit.reserve(session, cache, leg_id, now=now, **options)


def extend(db, leg_ids: list[str], now=T0, **options) -> list[credit.Grant]:
    with transaction(db) as session:
        return credit.extend(session, leg_ids, now=now, **options)


def settle(db, leg_id: str, seconds: int, answered_at=T0):
    with transaction(db) as session:
        return cdrs.settle(
            session, leg_id, now=answered_at, answered_at=answered_at, ended_at=answered_at + timedelta(seconds=seconds)
        )


def credit_of(db, account_id: int, now=T0) -> credit.Credit:
    with transaction(db) as session:
        return credit.credit(session, account_id, now)


# --- one call ------------------------------------------------------------------------------------


def test_reserve_grants_a_chunk_and_holds_its_cost(db, tariffs, cache):
    alice = account(db, balance="1.00")
    call_leg = leg(db, alice, UK_MOBILE)

    decision = reserve(db, cache, call_leg, seconds=60)

    assert decision.allowed and decision.reason is None
    assert decision.max_seconds == 300  # 1.00 at 0.20 a minute
    assert (decision.rate.prefix, decision.rate.destination) == ("447", "United Kingdom mobile")
    grant = decision.grant
    assert (grant.leg_id, grant.granted_seconds, grant.added_seconds, grant.amount) == (
        call_leg,
        60,
        60,
        Decimal("0.2"),
    )
    assert grant.expires_at == T0 + timedelta(seconds=credit.DEFAULT_TTL_SECONDS)
    held = credit_of(db, alice)
    assert (held.balance, held.reserved, held.free, held.calls) == (Decimal(1), Decimal("0.2"), Decimal("0.8"), 1)


def test_authorize_decides_without_reserving(db, tariffs, cache):
    alice = account(db, balance="0.35", credit_limit="0.05")
    with transaction(db) as session:
        decision = credit.authorize(session, cache, alice, UK_LANDLINE, now=T0)

    assert decision.allowed and decision.max_seconds == 240  # 0.40 at 0.10 a minute, limit included
    assert decision.grant is None
    assert credit_of(db, alice).reserved == 0


@pytest.mark.parametrize(
    ("fields", "number", "reason"),
    [
        ({}, FRANCE, Reason.NO_RATE),  # nothing in the tariff matches
        ({"tariff": None}, UK_LANDLINE, Reason.NO_RATE),  # an account without a tariff
        ({"balance": "0.19"}, UK_MOBILE, Reason.INSUFFICIENT_CREDIT),  # the first minute costs 0.20
        ({"balance": "0.10", "credit_limit": "0.09"}, UK_MOBILE, Reason.INSUFFICIENT_CREDIT),
        ({"balance": "5", "max_calls": 0}, UK_MOBILE, Reason.TOO_MANY_CALLS),
    ],
)
def test_refusals_say_why_and_reserve_nothing(db, tariffs, cache, fields, number, reason):
    fields.setdefault("balance", "1")
    alice = account(db, **fields)
    call_leg = leg(db, alice, number)

    decision = reserve(db, cache, call_leg)

    assert (decision.allowed, decision.max_seconds, decision.reason, decision.grant) == (False, 0, reason, None)
    assert credit_of(db, alice).reserved == 0
    with transaction(db) as session:
        assert active_reservations(session, alice) == 0


def test_a_suspended_account_is_refused_and_its_calls_not_extended(db, tariffs, cache):
    alice = account(db, balance="5")
    running = leg(db, alice, UK_LANDLINE)
    assert reserve(db, cache, running).allowed
    with transaction(db) as session:
        provisioning.set_status(session, "alice", AccountStatus.SUSPENDED)

    assert reserve(db, cache, leg(db, alice, UK_LANDLINE)).reason is Reason.ACCOUNT_SUSPENDED
    [grant] = extend(db, [running], now=T0 + timedelta(seconds=30))
    assert (grant.added_seconds, grant.granted_seconds) == (0, 60)


def test_the_credit_limit_can_be_spent_and_no_further(db, tariffs, cache):
    alice = account(db, balance="0", credit_limit="0.45")
    call_leg = leg(db, alice, UK_MOBILE)

    grant = reserve(db, cache, call_leg, seconds=600).grant

    assert grant.granted_seconds == 120  # 0.40; a third minute would need 0.60
    settle(db, call_leg, 120)
    with transaction(db) as session:
        assert balance(session, alice) == Decimal("-0.4") == ledger_sum(session, alice)


# --- many calls of one account ----------------------------------------------------------------------


def test_calls_share_the_credit_and_a_call_that_cannot_extend_is_cut(db, tariffs, cache):
    alice = account(db, balance="0.50")
    first, second, third = (leg(db, alice, UK_MOBILE) for _ in range(3))

    assert reserve(db, cache, first, seconds=60).grant.amount == Decimal("0.2")
    assert reserve(db, cache, second, seconds=60).grant.amount == Decimal("0.2")
    # 0.10 left: not a minute more for anyone.
    assert reserve(db, cache, third).reason is Reason.INSUFFICIENT_CREDIT
    [cut] = extend(db, [first], now=T0 + timedelta(seconds=40))
    assert (cut.added_seconds, cut.granted_seconds, cut.amount) == (0, 60, Decimal("0.2"))

    # The second call ends after 30 s: it pays its minute, and nothing it held stays held.
    assert settle(db, second, 30).cost == Decimal("0.2")
    assert credit_of(db, alice).free == Decimal("0.1")
    assert settle(db, first, 60).cost == Decimal("0.2")
    with transaction(db) as session:
        assert balance(session, alice) == Decimal("0.1") == ledger_sum(session, alice)
        assert active_reservations(session, alice) == 0


def test_max_concurrent_calls_counts_calls_not_legs(db, tariffs, cache):
    alice = account(db, balance="5", max_calls=1)
    leg_a = leg(db, alice, UK_MOBILE, role=LegRole.A, answered_at=T0)
    with transaction(db) as session:
        call_id = session.get(CallLeg, leg_a).session_id
    assert reserve(db, cache, leg_a).allowed

    other_call = leg(db, alice, UK_LANDLINE)
    assert reserve(db, cache, other_call).reason is Reason.TOO_MANY_CALLS
    # Leg B of the call already up is the same call.
    assert reserve(db, cache, leg(db, alice, UK_LANDLINE, call_id=call_id)).allowed

    settle(db, leg_a, 10)
    with transaction(db) as session:
        call_b = session.execute(
            select(Reservation.leg_id).where(Reservation.state == ReservationState.ACTIVE)
        ).scalar_one()
    settle(db, call_b, 10)
    assert reserve(db, cache, other_call).allowed  # the first call is over


def test_a_leg_cut_late_is_billed_no_further_than_its_grant(db, tariffs, cache):
    alice = account(db, balance="1.00")
    call_leg = leg(db, alice, UK_LANDLINE)
    assert reserve(db, cache, call_leg, seconds=60).grant.granted_seconds == 60

    cdr = settle(db, call_leg, 62)

    assert (cdr.duration_seconds, cdr.billed_seconds, cdr.cost) == (62, 60, Decimal("0.1"))
    with transaction(db) as session:
        assert balance(session, alice) == Decimal("0.9") == ledger_sum(session, alice)


def test_the_first_chunk_is_at_least_the_first_increment(db, tariffs, cache):
    alice = account(db, balance="1.00")
    uk, us = leg(db, alice, UK_LANDLINE), leg(db, alice, US)
    assert reserve(db, cache, uk, seconds=1).grant.granted_seconds == 60  # 60/60
    assert reserve(db, cache, us).grant.granted_seconds == credit.FIRST_CHUNK_SECONDS == 30  # 30/6


# --- a callback: leg A and leg B running together ------------------------------------------------------


def test_a_callback_prices_leg_a_on_its_own_tariff_and_both_legs_together(db, tariffs, cache):
    alice = account(db, balance="0.50", callback_tariff="callback")
    leg_a = leg(db, alice, UK_MOBILE, role=LegRole.A, answered_at=T0)
    with transaction(db) as session:
        call_id = session.get(CallLeg, leg_a).session_id

    decision_a = reserve(db, cache, leg_a, seconds=60)
    assert decision_a.rate.destination == "United Kingdom (callback)"
    assert decision_a.max_seconds == 1500  # 0.50 at 0.02 a minute, for leg A alone
    assert decision_a.grant.amount == Decimal("0.02")

    # 30 s later the customer has dialled a UK landline: both legs run from now on, A at 0.02 and B
    # at 0.10 a minute. In 240 s more, A is billed 300 s (0.10) and B 240 s (0.40): 0.50; a 241st
    # second would start B's fifth minute.
    later = T0 + timedelta(seconds=30)
    leg_b = leg(db, alice, UK_LANDLINE, call_id=call_id)
    with transaction(db) as session:
        announced = credit.authorize(session, cache, alice, UK_LANDLINE, now=later, call_id=call_id)
    decision_b = reserve(db, cache, leg_b, now=later, seconds=60)
    assert announced.max_seconds == decision_b.max_seconds == 240
    assert decision_b.rate.destination == "United Kingdom"
    assert (decision_b.grant.granted_seconds, decision_b.grant.amount) == (60, Decimal("0.1"))

    # B answers at once. The call's legs end together: its end is A's (60 s after T0; B's grant
    # would last to 90 s). Extending moves that end: to 120 s, where A has 120 s and B 90 s...
    with transaction(db) as session:
        session.get(CallLeg, leg_b).answered_at = later
    grants = extend(db, [leg_a, leg_b], now=later + timedelta(seconds=30), seconds=60)
    assert [(g.granted_seconds, g.added_seconds, g.amount) for g in grants] == [
        (120, 60, Decimal("0.04")),
        (90, 60, Decimal("0.2")),
    ]
    # ...then to 270 s, all the money there is: A billed 300 s (0.10) and B 240 s (0.40), as
    # announced; a 271st second would start B's fifth minute. Then no more.
    grants = extend(db, [leg_a, leg_b], now=later + timedelta(seconds=90), seconds=600)
    assert [(g.added_seconds, g.granted_seconds) for g in grants] == [(150, 270), (150, 240)]
    assert sum(g.amount for g in grants) == Decimal("0.5")
    grants = extend(db, [leg_a, leg_b], now=later + timedelta(seconds=200))
    assert [g.added_seconds for g in grants] == [0, 0]

    settle(db, leg_b, 200, answered_at=later)
    settle(db, leg_a, 230)
    with transaction(db) as session:
        assert balance(session, alice) == Decimal("0.02") == ledger_sum(session, alice)  # 0.50 - 0.08 - 0.40


def test_a_callback_waiting_for_its_destination_holds_credit_for_one(db, tariffs, cache):
    # The cheapest destination of retail starts at 0.025 (30 s to the US at 0.05).
    alice = account(db, balance="0.25")
    legs_a = [leg(db, alice, UK_LANDLINE, role=LegRole.A, answered_at=T0) for _ in range(3)]
    decisions = [reserve(db, cache, leg_a, standby=True) for leg_a in legs_a]
    assert [d.allowed for d in decisions] == [True, True, False]  # 0.10 + 0.025 each
    assert decisions[2].reason is Reason.INSUFFICIENT_CREDIT
    assert decisions[0].grant.amount == Decimal("0.125") and credit_of(db, alice).free == 0

    with transaction(db) as session:
        calls = [session.get(CallLeg, leg_a).session_id for leg_a in legs_a]
    us = leg(db, alice, US, call_id=calls[0])
    b = reserve(db, cache, us, now=T0 + timedelta(seconds=10))
    assert b.allowed and (b.grant.granted_seconds, b.grant.amount) == (30, Decimal("0.025"))
    # The second caller's destination costs more than its standby, and nothing else is free.
    uk = leg(db, alice, UK_LANDLINE, call_id=calls[1])
    assert reserve(db, cache, uk, now=T0 + timedelta(seconds=10)).reason is Reason.INSUFFICIENT_CREDIT
    with transaction(db) as session:
        held = dict(session.execute(select(Reservation.leg_id, Reservation.standby)).all())
        assert (held[legs_a[0]], held[legs_a[1]]) == (0, Decimal("0.025"))
    assert credit_of(db, alice).reserved == Decimal("0.25")


def test_renewing_a_reservation_made_ahead_keeps_it_while_its_credit_is_there(db, tariffs, cache):
    alice = account(db, balance="0.10")
    ahead = leg(db, alice, UK_LANDLINE)
    reserve(db, cache, ahead, ttl_seconds=60)
    with transaction(db) as session:
        assert credit.renew(session, [ahead], now=T0 + timedelta(seconds=50))
    taker = leg(db, alice, UK_LANDLINE)
    later = T0 + timedelta(seconds=50 + credit.DEFAULT_TTL_SECONDS + 1)
    assert reserve(db, cache, taker, now=later).allowed  # the first expired: its credit is taken
    with transaction(db) as session:
        assert not credit.renew(session, [ahead], now=later)


def test_a_single_call_on_a_small_balance_gets_all_it_can_afford(db, tariffs, cache):
    """0.30 USD: leg A to the UK (0.10, 60/60), leg B to the US (0.05, 30/6) answered 6 s later.
    Extended chunk by chunk, they end together when A has used 120 s and B 114 s: 0.20 + 0.095."""
    alice = account(db, balance="0.30")
    leg_a = leg(db, alice, UK_LANDLINE, role=LegRole.A, answered_at=T0)
    with transaction(db) as session:
        call_id = session.get(CallLeg, leg_a).session_id
    assert reserve(db, cache, leg_a).allowed
    b_answered = T0 + timedelta(seconds=6)
    leg_b = leg(db, alice, US, call_id=call_id, answered_at=b_answered)
    assert reserve(db, cache, leg_b, now=b_answered).allowed
    now, grants = b_answered, []
    for _ in range(10):
        grants = extend(db, [leg_a, leg_b], now=now)
        if grants[0].added_seconds == 0:
            break
        now = T0 + timedelta(seconds=grants[0].granted_seconds - 20)
    assert [g.granted_seconds for g in grants] == [120, 114]
    assert credit_of(db, alice, now).free == Decimal("0.005")


# --- expiry and release --------------------------------------------------------------------------


def test_an_expired_reservation_stops_holding_credit_and_is_still_settled(db, tariffs, cache):
    alice = account(db, balance="0.30")
    crashed = leg(db, alice, UK_MOBILE)
    assert reserve(db, cache, crashed, seconds=60, ttl_seconds=90).grant.amount == Decimal("0.2")

    assert credit_of(db, alice, T0 + timedelta(seconds=89)).free == Decimal("0.1")
    assert credit_of(db, alice, T0 + timedelta(seconds=90)).free == Decimal("0.3")
    # Its credit is free for another call, and it can only be extended if its amount fits again.
    later = T0 + timedelta(seconds=100)
    other = leg(db, alice, UK_MOBILE)
    assert reserve(db, cache, other, now=later).grant.amount == Decimal("0.2")
    [stale] = extend(db, [crashed], now=later)
    assert (stale.added_seconds, stale.expires_at) == (0, T0 + timedelta(seconds=90))

    # The controller comes back and reports the call lasted 50 s: it is charged all the same.
    assert settle(db, crashed, 50).cost == Decimal("0.2")
    with transaction(db) as session:
        assert balance(session, alice) == Decimal("0.1") == ledger_sum(session, alice)


def test_an_expired_reservation_is_revived_when_its_amount_still_fits(db, tariffs, cache):
    alice = account(db, balance="1")
    call_leg = leg(db, alice, UK_MOBILE)
    reserve(db, cache, call_leg, seconds=60, ttl_seconds=30)

    [grant] = extend(db, [call_leg], now=T0 + timedelta(seconds=45), seconds=60, ttl_seconds=30)

    assert (grant.added_seconds, grant.granted_seconds, grant.amount) == (60, 120, Decimal("0.4"))
    assert grant.expires_at == T0 + timedelta(seconds=75)
    assert credit_of(db, alice, T0 + timedelta(seconds=45)).reserved == Decimal("0.4")


def test_release_gives_back_an_unanswered_leg(db, tariffs, cache):
    alice = account(db, balance="1")
    busy, no_answer = leg(db, alice, UK_MOBILE), leg(db, alice, UK_MOBILE)
    reserve(db, cache, busy)
    reserve(db, cache, no_answer)

    with transaction(db) as session:
        assert credit.release(session, busy, now=T0) is True
        assert credit.release(session, busy, now=T0) is False
        # A leg that ended unanswered is settled to nothing: no CDR, no charge, reservation released.
        assert cdrs.settle(session, no_answer, now=T0) is None

    assert credit_of(db, alice).reserved == 0
    with transaction(db) as session:
        states = session.execute(select(Reservation.state)).scalars().all()
        assert states == [ReservationState.RELEASED] * 2
        assert balance(session, alice) == Decimal(1)
        with pytest.raises(CreditError, match="already has a reservation: extend or settle it"):
            credit.reserve(session, cache, busy, now=T0)


def test_reserving_a_leg_again_returns_its_reservation(db, tariffs, cache):
    alice = account(db, balance="1")
    call_leg = leg(db, alice, US)
    first = reserve(db, cache, call_leg, seconds=60)

    again = reserve(db, cache, call_leg, seconds=300, now=T0 + timedelta(seconds=5))

    assert again.allowed and again.grant.added_seconds == 0
    assert again.grant.granted_seconds == first.grant.granted_seconds == 60
    assert again.rate.price == first.rate.price and again.rate.rate_id == first.rate.rate_id
    assert credit_of(db, alice).reserved == Decimal("0.05")


def test_a_price_change_during_a_call_does_not_change_its_price(db, tariffs, cache):
    alice = account(db, balance="1")
    call_leg = leg(db, alice, UK_MOBILE)
    reserve(db, cache, call_leg)
    with transaction(db) as session:
        provisioning.import_rates(session, "retail", "prefix,destination,price_per_minute\n447,UK mobile,0.30\n")

    assert settle(db, call_leg, 50).cost == Decimal("0.2")  # a minute at the authorized 0.20, not 0.30


def test_operations_on_unknown_legs_fail_clearly(db, tariffs, cache):
    with transaction(db) as session:
        with pytest.raises(CreditError, match="no leg nope"):
            credit.reserve(session, cache, "nope", now=T0)
        with pytest.raises(CreditError, match="has no reservation"):
            credit.extend(session, ["nope"], now=T0)
        assert credit.release(session, "nope", now=T0) is False


# --- the ledger under concurrency -----------------------------------------------------------------


@pytest.fixture
def mariadb_db():
    for url in mariadb_database():
        from boomerang.store import migrate

        migrate.upgrade(url)
        engine = make_engine(url)
        yield session_factory(engine)
        engine.dispose()


@pytest.mark.mariadb
def test_a_posting_adds_to_the_latest_balance_not_one_read_earlier(mariadb_db):
    """A transaction that read the account before another one topped it up must still add to the
    new balance: the row lock is taken and the row read again before the balance changes."""
    with transaction(mariadb_db) as session:
        alice = make_account(session, "alice", tariff=None, balance="10")
    with transaction(mariadb_db) as first:
        # Loaded, not locked, and kept (as provisioning.top_up keeps it while it posts).
        loaded = provisioning.get_account(first, "alice")
        with transaction(mariadb_db) as second:
            ledger.post(second, alice, LedgerKind.TOPUP, Decimal(5), "topup-2")
        posting = ledger.post(first, alice, LedgerKind.CHARGE, Decimal(-1), "charge-1")
        assert posting.entry.balance_after == Decimal(14) == loaded.balance
    with transaction(mariadb_db) as session:
        assert balance(session, alice) == Decimal(14) == ledger_sum(session, alice)
