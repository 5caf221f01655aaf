"""CDR rating and re-rating on SQLite and MariaDB: one CDR and one charge per leg, exact money."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from boomerang import provisioning
from boomerang.store import transaction
from boomerang.store.models import CallLeg, Cdr, LedgerEntry, LedgerKind, LegRole
from rating import cdrs, credit
from rating.cdrs import RatingError
from rating.tariff_cache import TariffCache, load_index
from tests.ratingkit import (
    CALLBACK,
    T0,
    UK_MOBILE,
    US,
    balance,
    ledger_sum,
    make_account,
    make_tariff,
    new_call,
    new_leg,
)

RETAIL = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment,grace_seconds,"
    "effective_from\n"
    "447,United Kingdom mobile,0.20,0,60,60,0,\n"
    "1,US and Canada,0.05,0.01,30,6,3,\n"
    "1,US and Canada,0.04,0.01,30,6,3,2027-02-01\n"
)


@pytest.fixture
def alice(db) -> int:
    with transaction(db) as session:
        make_tariff(session, "retail", RETAIL)
        make_tariff(session, "callback", CALLBACK)
        return make_account(session, "alice", tariff="retail", callback_tariff="callback", balance="10")


def finished_leg(db, account_id: int, number: str, answered_at: datetime, seconds: float, role=LegRole.B) -> str:
    """A leg as the call controller leaves it: answered, then ended `seconds` later."""
    with transaction(db) as session:
        leg_id = new_leg(session, new_call(session, account_id), number, role, answered_at)
        leg = session.get(CallLeg, leg_id)
        leg.ended_at = answered_at + timedelta(seconds=seconds)
        return leg_id


def settle(db, leg_id: str, **times) -> Cdr | None:
    with transaction(db) as session:
        return cdrs.settle(session, leg_id, now=T0, **times)


def entries_of_leg(db, leg_id: str) -> list[tuple[LedgerKind, Decimal, str]]:
    with transaction(db) as session:
        rows = session.execute(
            select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.reference)
            .where(LedgerEntry.reference.like(f"%:{leg_id}"))
            .order_by(LedgerEntry.id)
        )
        return [tuple(row) for row in rows]


def test_a_leg_is_rated_once_however_often_it_is_settled(db, alice):
    leg_id = finished_leg(db, alice, UK_MOBILE, T0, 61.999)

    cdr = settle(db, leg_id)
    again = settle(db, leg_id)

    assert again.id == cdr.id
    assert (cdr.duration_seconds, cdr.billed_seconds, cdr.cost, cdr.currency) == (61, 120, Decimal("0.4"), "USD")
    assert (cdr.destination, cdr.price_per_minute, cdr.connect_fee, cdr.role) == (
        "United Kingdom mobile",
        Decimal("0.2"),
        Decimal(0),
        LegRole.B,
    )
    assert (cdr.answer_time, cdr.end_time) == (T0, T0 + timedelta(seconds=61.999))
    assert entries_of_leg(db, leg_id) == [(LedgerKind.CHARGE, Decimal("-0.4"), f"cdr:{leg_id}")]
    with transaction(db) as session:
        assert session.execute(select(func.count()).select_from(Cdr)).scalar_one() == 1
        assert balance(session, alice) == Decimal("9.6") == ledger_sum(session, alice)


def test_the_fraction_of_the_last_second_is_not_billed(db, alice):
    """A leg cut a few milliseconds after its granted minute is not billed a second minute."""
    leg_id = finished_leg(db, alice, UK_MOBILE, T0, 60.4)
    assert settle(db, leg_id).billed_seconds == 60


def test_without_a_reservation_the_rate_in_force_at_answer_applies(db, alice):
    new_price = datetime(2027, 2, 1, tzinfo=UTC)
    before = finished_leg(db, alice, US, new_price - timedelta(seconds=1), 40)  # ends after the change
    after = finished_leg(db, alice, US, new_price, 40)
    leg_a = finished_leg(db, alice, UK_MOBILE, new_price, 40, role=LegRole.A)

    # 30/6 with a 0.01 connect fee: 40 s bill 42 s.
    assert settle(db, before).cost == Decimal("0.045")  # 0.01 + 0.05 * 42/60
    assert settle(db, after).cost == Decimal("0.038")  # 0.01 + 0.04 * 42/60
    leg_a_cdr = settle(db, leg_a)  # the leg calling the customer back: the callback tariff
    assert (leg_a_cdr.destination, leg_a_cdr.cost) == ("United Kingdom (callback)", Decimal("0.02"))


def test_a_call_within_its_grace_seconds_has_a_cdr_and_costs_nothing(db, alice):
    leg_id = finished_leg(db, alice, US, T0, 3.9)

    cdr = settle(db, leg_id)

    assert (cdr.duration_seconds, cdr.billed_seconds, cdr.cost) == (3, 0, Decimal(0))
    assert entries_of_leg(db, leg_id) == []


def test_a_leg_nothing_rates_is_recorded_at_no_cost_and_marked_unrated(db, alice):
    france = finished_leg(db, alice, "33612345678", T0, 30)

    cdr = settle(db, france)

    assert (cdr.duration_seconds, cdr.billed_seconds, cdr.cost, cdr.unrated_reason) == (30, 0, Decimal(0), "no_rate")
    assert settle(db, france).id == cdr.id  # once
    assert entries_of_leg(db, france) == []
    with transaction(db) as session:
        assert balance(session, alice) == Decimal(10)


def test_legs_that_cannot_be_settled_are_refused_and_nothing_is_written(db, alice):
    with transaction(db) as session:
        running = new_leg(session, new_call(session, alice), UK_MOBILE, answered_at=T0)

    for leg_id, message in [(running, "has not ended"), ("nope", "no leg nope")]:
        with pytest.raises(RatingError, match=message), transaction(db) as session:
            cdrs.settle(session, leg_id, now=T0)
    with pytest.raises(RatingError, match="ends before it was answered"), transaction(db) as session:
        cdrs.settle(session, running, now=T0, ended_at=T0 - timedelta(seconds=1))

    with transaction(db) as session:
        assert session.execute(select(func.count()).select_from(Cdr)).scalar_one() == 0
        assert balance(session, alice) == Decimal(10)


def test_explicit_times_override_the_legs_own(db, alice):
    leg_id = finished_leg(db, alice, UK_MOBILE, T0, 3600)
    cdr = settle(db, leg_id, answered_at=T0, ended_at=T0 + timedelta(seconds=59))
    assert (cdr.duration_seconds, cdr.cost) == (59, Decimal("0.2"))


# --- re-rating -----------------------------------------------------------------------------------


def rerate(db, run_id: str, start=T0 - timedelta(days=3), end=T0 + timedelta(days=27), **options):
    with transaction(db) as session:
        return cdrs.rerate(session, start=start, end=end, run_id=run_id, now=T0, by="admin", **options)


def costs(db) -> list[Decimal]:
    with transaction(db) as session:
        return session.execute(select(Cdr.cost).order_by(Cdr.id)).scalars().all()


def assert_every_cdr_reconciles(db) -> None:
    """For each CDR, the ledger entries naming its leg add up to exactly minus its cost."""
    with transaction(db) as session:
        for leg_id, cost in session.execute(select(Cdr.leg_id, Cdr.cost)):
            total = session.execute(
                select(func.sum(LedgerEntry.amount)).where(LedgerEntry.reference.like(f"%:{leg_id}"))
            ).scalar_one()
            assert (total or Decimal(0)) == -cost


def test_rerating_a_period_posts_each_difference_once(db, alice):
    with transaction(db) as session:
        bob = make_account(session, "bob", tariff="retail", balance="10")
    legs = [
        finished_leg(db, alice, UK_MOBILE, T0, 90),  # 0.40
        finished_leg(db, alice, UK_MOBILE, T0 + timedelta(days=2), 30),  # 0.20
        finished_leg(db, bob, UK_MOBILE, T0 + timedelta(days=3), 200),  # 0.80
        finished_leg(db, alice, UK_MOBILE, T0 + timedelta(days=40), 60),  # 0.20, outside the period
    ]
    for leg_id in legs:
        settle(db, leg_id)
    # The 0.20 was a mistake: the operator imports the right price over it (same prefix and date).
    with transaction(db) as session:
        provisioning.import_rates(session, "retail", "prefix,destination,price_per_minute\n447,UK mobile,0.15\n")

    report = rerate(db, "fix-447")

    assert (report.examined, report.changed, report.already_done, report.unrated) == (3, 3, 0, 0)
    assert report.credited == {"USD": Decimal("0.35")}  # 0.10 + 0.05 + 0.20 back to the customers
    assert costs(db) == [Decimal("0.3"), Decimal("0.15"), Decimal("0.6"), Decimal("0.2")]
    assert entries_of_leg(db, legs[0]) == [
        (LedgerKind.CHARGE, Decimal("-0.4"), f"cdr:{legs[0]}"),
        (LedgerKind.ADJUSTMENT, Decimal("0.1"), f"rerate:fix-447:{legs[0]}"),
    ]
    with transaction(db) as session:
        assert balance(session, alice) == Decimal("9.35") == ledger_sum(session, alice)  # 10 - 0.3 - 0.15 - 0.2
        assert balance(session, bob) == Decimal("9.4") == ledger_sum(session, bob)

    # The same run again changes nothing; another run finds nothing to change.
    again = rerate(db, "fix-447")
    assert (again.examined, again.changed, again.already_done, again.credited) == (3, 0, 3, {})
    assert rerate(db, "check").changed == 0
    assert_every_cdr_reconciles(db)


def test_rerating_with_another_tariff_or_one_account(db, alice):
    with transaction(db) as session:
        make_tariff(session, "promo", "prefix,destination,price_per_minute\n44,UK promo,0.06\n")
        bob = make_account(session, "bob", tariff="retail", balance="10")
        promo = provisioning.get_tariff(session, "promo").id
    alice_leg = finished_leg(db, alice, UK_MOBILE, T0, 90)
    bob_leg = finished_leg(db, bob, UK_MOBILE, T0, 90)
    us_leg = finished_leg(db, alice, US, T0, 90)
    for leg_id in (alice_leg, bob_leg, us_leg):
        settle(db, leg_id)

    report = rerate(db, "promo-alice", tariff_id=promo, account_id=alice)

    assert (report.examined, report.changed, report.unrated) == (2, 1, 1)  # promo has no rate for the US
    with transaction(db) as session:
        by_leg = dict(session.execute(select(Cdr.leg_id, Cdr.cost)).all())
        promo_cdr = session.execute(select(Cdr).where(Cdr.leg_id == alice_leg)).scalar_one()
    assert by_leg == {alice_leg: Decimal("0.12"), bob_leg: Decimal("0.4"), us_leg: Decimal("0.085")}
    assert (promo_cdr.destination, promo_cdr.price_per_minute, promo_cdr.billed_seconds) == (
        "UK promo",
        Decimal("0.06"),
        120,
    )
    assert_every_cdr_reconciles(db)


def test_rerating_refuses_a_bad_run_id_or_period(db, alice):
    for run_id in ["", "-x", "a b", "x" * 65]:
        with pytest.raises(ValueError, match="is not a run id"):
            rerate(db, run_id)
    with pytest.raises(ValueError, match="ends before it starts"):
        rerate(db, "ok", start=T0, end=T0)


# --- a month of calls ------------------------------------------------------------------------------

MONTH_RATES = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment,minimum_duration,"
    "grace_seconds,rounding_mode,rounding_digits\n"
    "44,UK,0.1,0,60,60,0,0,up,4\n"
    "447,UK mobile,0.123456,0.013,30,6,0,3,half_up,3\n"
    "1,US,0.011111,0,1,1,0,0,down,6\n"
    "33,France,0.07,0.0049,1,1,10,0,up,2\n"
)
MONTH_RERATES = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment,rounding_mode,"
    "rounding_digits\n"
    "4,Europe,0.0999,0.001,6,6,half_up,5\n"
    "1,US,0.013,0,60,1,down,1\n"
    "3,Europe,0.0777,0,1,1,up,3\n"
)
NUMBERS = ["442071234567", UK_MOBILE, US, "33612345678"]
MONTH = datetime(2027, 3, 1, tzinfo=UTC)
_accounts = itertools.count()

calls = st.lists(
    st.tuples(st.integers(0, 31 * 86400 - 3600), st.integers(0, 3600), st.sampled_from(NUMBERS)),
    min_size=1,
    max_size=30,
)


@pytest.fixture
def month_tariffs(db) -> int:
    with transaction(db) as session:
        make_tariff(session, "month", MONTH_RATES)
        return make_tariff(session, "month-rerate", MONTH_RERATES)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(month_calls=calls)
def test_a_month_of_calls_neither_loses_nor_creates_money(db, month_tariffs, month_calls):
    """Each CDR's cost is the exact price of its billed seconds rounded once by its rate's rule;
    the ledger holds exactly minus each cost, before and after re-rating; the balance is exactly
    the sum of the ledger. No other rounding happens anywhere."""
    login = f"month{next(_accounts)}"
    with transaction(db) as session:
        account_id = make_account(session, login, tariff="month", balance="1000")
        index = load_index(session, provisioning.get_tariff(session, "month").id)
    cache = TariffCache()
    for offset, seconds, number in month_calls:
        answered = MONTH + timedelta(seconds=offset, microseconds=offset % 1000 * 997)
        with transaction(db) as session:
            leg_id = new_leg(session, new_call(session, account_id), number, answered_at=answered)
            cdr = cdrs.settle(
                session, leg_id, now=answered, cache=cache, ended_at=answered + timedelta(seconds=seconds)
            )
        price = index.lookup(number, answered).price
        exact = Fraction(price.connect_fee) + Fraction(price.per_minute) * cdr.billed_seconds / 60
        step = Fraction(1, 10**price.rounding_digits)
        assert cdr.cost == price.cost(cdr.duration_seconds)
        assert cdr.cost == 0 or abs(Fraction(cdr.cost) - exact) < step

    def reconcile() -> Decimal:
        with transaction(db) as session:
            total_cost = session.execute(select(func.sum(Cdr.cost)).where(Cdr.account_id == account_id)).scalar_one()
            assert balance(session, account_id) == ledger_sum(session, account_id) == Decimal(1000) - total_cost
            return total_cost

    before = reconcile()
    with transaction(db) as session:
        report = cdrs.rerate(
            session,
            start=MONTH,
            end=MONTH + timedelta(days=31),
            run_id=f"{login}-rerate",
            now=MONTH,
            tariff_id=month_tariffs,
            account_id=account_id,
        )
    after = reconcile()
    assert before - after == report.credited.get("USD", Decimal(0))


# --- settling while a reservation is held ---------------------------------------------------------------


def test_settling_a_reserved_leg_charges_the_reserved_price_and_closes_it(db, alice):
    cache = TariffCache()
    with transaction(db) as session:
        leg_id = new_leg(session, new_call(session, alice), UK_MOBILE)
        credit.reserve(session, cache, leg_id, now=T0, seconds=120)
    settle(db, leg_id, answered_at=T0, ended_at=T0 + timedelta(seconds=100))
    with transaction(db) as session:
        held = credit.credit(session, alice, T0)
    assert (held.reserved, held.balance) == (Decimal(0), Decimal("9.6"))
