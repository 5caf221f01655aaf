"""Reserving and settling many legs in one transaction (as the call controller does under load)
decides exactly as one leg after another would, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from boomerang.store import transaction
from boomerang.store.models import CallLeg, LedgerEntry, LegRole, Reservation, ReservationState
from rating import cdrs, credit
from rating.credit import CreditError, Reason
from rating.tariff_cache import TariffCache
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
    "1,US and Canada,0.05,0.01,30,6\n"
)


@pytest.fixture
def cache() -> TariffCache:
    return TariffCache(check_interval=0)


@pytest.fixture
def tariffs(db) -> None:
    with transaction(db) as session:
        make_tariff(session, "retail", RETAIL)
        make_tariff(session, "callback", CALLBACK)


def accounts(db, suffix: str) -> tuple[int, int]:
    """Alice, whose credit runs out within the batch, and Bob, who has plenty."""
    with transaction(db) as session:
        alice = make_account(session, f"alice{suffix}", tariff="retail", balance="0.50", max_calls=3)
        bob = make_account(session, f"bob{suffix}", tariff="retail", callback_tariff="callback", balance="5")
        return alice, bob


def legs_of_a_busy_moment(db, alice: int, bob: int) -> list[str]:
    """Alice's calls compete for her 0.50 and her three calls; Bob's callback has leg A and leg B."""
    with transaction(db) as session:
        bobs_call = new_call(session, bob)
        made = [
            new_leg(session, new_call(session, alice), UK_MOBILE),  # 0.20 a minute
            new_leg(session, bobs_call, UK_MOBILE, LegRole.A, answered_at=T0),
            new_leg(session, new_call(session, alice), UK_LANDLINE),  # 0.10
            new_leg(session, bobs_call, US, sequence=1),
            new_leg(session, new_call(session, alice), UK_MOBILE),  # 0.20: 0.20 left, so one minute
            new_leg(session, new_call(session, alice), UK_LANDLINE),  # a fourth call
        ]
        return made


def outcome(decision: credit.Decision) -> tuple:
    grant = decision.grant
    return (decision.allowed, decision.reason, decision.max_seconds, grant and (grant.granted_seconds, grant.amount))


def test_a_batch_reserves_as_one_leg_after_another_would(db, tariffs, cache):
    one_by_one = legs_of_a_busy_moment(db, *accounts(db, "1"))
    batched = legs_of_a_busy_moment(db, *accounts(db, "2"))

    singly = []
    for leg_id in one_by_one:
        with transaction(db) as session:
            singly.append(outcome(credit.reserve(session, cache, leg_id, now=T0, seconds=60)))
    with transaction(db) as session:
        together = [outcome(d) for d in credit.reserve_many(session, cache, batched, now=T0, seconds=60)]

    assert together == singly
    # What that means for the people concerned:
    assert [decision[:2] for decision in together] == [
        (True, None),
        (True, None),
        (True, None),
        (True, None),
        (True, None),
        (False, Reason.TOO_MANY_CALLS),
    ]
    assert together[4][3] == (60, Decimal("0.2"))  # Alice's last 0.20: her third call gets one minute
    # Bob's leg B runs beside his leg A: its maximum counts both legs' cost (0.02 + 0.05 a minute
    # and B's 0.01 connect fee, from 5.00).
    assert together[3][2] == singly[3][2] < 5 * 60 / Decimal("0.05")


def test_a_leg_twice_in_a_batch_is_reserved_once(db, tariffs, cache):
    alice, _ = accounts(db, "")
    with transaction(db) as session:
        leg_id = new_leg(session, new_call(session, alice), UK_LANDLINE)
    with transaction(db) as session:
        first, again = credit.reserve_many(session, cache, [leg_id, leg_id], now=T0, seconds=120)
    assert first == again and first.grant.amount == Decimal("0.2")
    with transaction(db) as session:
        assert active_reservations(session, alice) == 1
        assert credit.credit(session, alice, T0).free == Decimal("0.3")


def test_a_batch_with_an_unknown_leg_reserves_nothing(db, tariffs, cache):
    alice, _ = accounts(db, "")
    with transaction(db) as session:
        leg_id = new_leg(session, new_call(session, alice), UK_LANDLINE)
    with pytest.raises(CreditError, match="no leg nope"):
        with transaction(db) as session:
            credit.reserve_many(session, cache, [leg_id, "nope"], now=T0)
    with transaction(db) as session:
        assert active_reservations(session, alice) == 0


def test_a_batch_settles_each_leg_once_and_charges_in_order(db, tariffs, cache):
    alice, bob = accounts(db, "")
    later = T0 + timedelta(seconds=100)
    with transaction(db) as session:
        talked = [new_leg(session, new_call(session, alice), UK_LANDLINE) for _ in range(2)]
        unanswered = new_leg(session, new_call(session, alice), US)
        bobs = new_leg(session, new_call(session, bob), US)
        credit.reserve_many(session, cache, [*talked, bobs], now=T0, seconds=100)
        credit.reserve_many(session, cache, [unanswered], now=T0)
        for leg_id in [*talked, bobs]:
            leg = session.get(CallLeg, leg_id)
            leg.answered_at, leg.ended_at = T0, later  # 100 s: 2 minutes at 0.10; 0.01 + 102 s at 0.05
        session.get(CallLeg, unanswered).ended_at = later
    with transaction(db) as session:
        bobs_cdr = cdrs.settle(session, bobs, now=later)  # settled already, e.g. by an earlier event

    with transaction(db) as session:
        results = cdrs.settle_many(session, [talked[0], unanswered, bobs, talked[1], talked[0]], now=later)

    first, none, bob_again, second, first_again = results
    assert none is None and first_again is first
    assert bob_again.id == bobs_cdr.id and bob_again.cost == Decimal("0.095")
    assert (first.cost, second.cost, first.billed_seconds) == (Decimal("0.2"), Decimal("0.2"), 120)
    assert first.id != second.id
    with transaction(db) as session:
        assert balance(session, alice) == Decimal("0.1") == ledger_sum(session, alice)
        assert balance(session, bob) == Decimal("4.905") == ledger_sum(session, bob)  # charged once
        entries = session.execute(
            select(LedgerEntry.reference, LedgerEntry.balance_after)
            .where(LedgerEntry.account_id == alice)
            .order_by(LedgerEntry.id)
        ).all()
        assert entries[1:] == [(f"cdr:{talked[0]}", Decimal("0.3")), (f"cdr:{talked[1]}", Decimal("0.1"))]
        states = dict(session.execute(select(Reservation.leg_id, Reservation.state)).all())
        assert states[unanswered] is ReservationState.RELEASED
        assert states[talked[0]] is states[talked[1]] is states[bobs] is ReservationState.SETTLED
