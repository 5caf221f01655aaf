"""The call controller's credit desk: many calls reserving and settling at once share transactions,
each gets its own answer, and one bad request fails only itself (SQLite and MariaDB)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from boomerang.store import transaction
from boomerang.store.models import CallLeg, Cdr, Reservation, ReservationState
from callback.credit_desk import CreditDesk
from callback.store import CallbackStore
from rating.credit import CreditError, Reason
from tests.ratingkit import (
    T0,
    UK_MOBILE,
    active_reservations,
    balance,
    ledger_sum,
    make_account,
    make_tariff,
    new_call,
    new_leg,
)

RETAIL = "prefix,destination,price_per_minute\n44,United Kingdom,0.06\n"
CALLS = 40


@pytest.fixture
def store(migrated):
    store = CallbackStore(migrated)
    yield store
    store.close()


def test_calls_starting_together_share_transactions_and_get_their_own_answers(store, db):
    with transaction(db) as session:
        make_tariff(session, "retail", RETAIL)
        # Credit for 30 of the 40 calls' first minute (0.06 each).
        alice = make_account(session, "alice", tariff="retail", balance="1.80", max_calls=100)
        legs = [new_leg(session, new_call(session, alice), UK_MOBILE) for _ in range(CALLS)]
    batches = []
    reserve_many = store.reserve_many
    store.reserve_many = lambda legs, now: batches.append(len(legs)) or reserve_many(legs, now)

    async def calls():
        desk = CreditDesk(store)
        decisions = await asyncio.gather(*(desk.reserve(leg) for leg in legs))
        with transaction(db) as session:  # the calls that were placed talk 30 s; the others end
            for leg_id, decision in zip(legs, decisions, strict=True):
                leg = session.get(CallLeg, leg_id)
                leg.answered_at = T0 if decision.allowed else None
                leg.ended_at = T0 + timedelta(seconds=30)
        await asyncio.gather(*(desk.settle(leg) for leg in legs))
        return decisions

    decisions = asyncio.run(calls())

    assert sum(batches) == CALLS and len(batches) < CALLS / 4  # shared transactions
    assert [d.allowed for d in decisions].count(True) == 30
    assert {d.reason for d in decisions if not d.allowed} == {Reason.INSUFFICIENT_CREDIT}
    with transaction(db) as session:
        assert session.execute(select(func.count()).select_from(Cdr)).scalar_one() == 30
        assert balance(session, alice) == Decimal(0) == ledger_sum(session, alice)
        assert active_reservations(session, alice) == 0


def test_a_bad_request_in_a_batch_fails_only_itself(store, db):
    with transaction(db) as session:
        make_tariff(session, "retail", RETAIL)
        alice = make_account(session, "alice", tariff="retail", balance="5")
        legs = [new_leg(session, new_call(session, alice), UK_MOBILE) for _ in range(3)]

    async def calls():
        desk = CreditDesk(store)
        return await asyncio.gather(*(desk.reserve(leg) for leg in [legs[0], "no-such-leg", *legs[1:]]),
                                    return_exceptions=True)  # fmt: skip

    first, bad, *others = asyncio.run(calls())

    assert isinstance(bad, CreditError) and "no leg no-such-leg" in str(bad)
    assert first.allowed and all(decision.allowed for decision in others)
    with transaction(db) as session:
        assert active_reservations(session, alice) == 3
        assert set(session.execute(select(Reservation.state)).scalars()) == {ReservationState.ACTIVE}
