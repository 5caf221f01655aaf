"""`boomerang rate lookup` and `boomerang cdr rerate`.

Exit codes (boomerang/cli/main.py): 0 done, 2 invalid input or usage, 3 not found.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from boomerang.store import transaction
from boomerang.store.models import Account, Cdr, LedgerEntry, LedgerKind
from rating import cdrs
from tests.clikit import failed, ok
from tests.ratingkit import T0, UK_MOBILE, new_call, new_leg

RATES = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment,effective_from\n"
    "44,United Kingdom,0.10,0,60,60,\n"
    "447,United Kingdom mobile,0.20,0.01,30,6,\n"
    "447,United Kingdom mobile,0.15,0.01,30,6,2027-06-01\n"
)


def fields(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.splitlines())


@pytest.fixture
def retail(cli) -> str:
    ok(cli("tariff", "create", "retail", "--currency", "USD"))
    ok(cli("tariff", "import", "retail", "-", stdin=RATES))
    return "retail"


# --- rate lookup ---------------------------------------------------------------------------------


def test_lookup_shows_the_rate_in_force_and_what_calls_cost(cli, retail):
    found = fields(
        ok(cli("rate", "lookup", "+44 7700 900123", "--tariff", "retail", "--at", "2027-01-04", "--seconds", "31"))
    )

    assert found == {
        "number": "+447700900123",
        "prefix": "447",
        "destination": "United Kingdom mobile",
        "currency": "USD",
        "price_per_minute": "0.200000",
        "connect_fee": "0.010000",
        "increments": "30/6",
        "minimum_duration": "0",
        "grace_seconds": "0",
        "rounding": "up 4",
        "effective_from": "always",
        "billed_seconds": "36",
        "cost": "0.130000",  # 0.01 + 0.20 * 36/60
    }
    later = fields(ok(cli("rate", "lookup", "447700900123", "--tariff", "retail", "--at", "2027-07-01T10:00Z")))
    assert (later["price_per_minute"], later["effective_from"]) == ("0.150000", "2027-06-01T00:00:00+00:00")
    landline = fields(ok(cli("rate", "lookup", "00442071234567", "--tariff", "retail", "--credit", "0.35")))
    assert (landline["destination"], landline["max_seconds"]) == ("United Kingdom", "180")


def test_lookup_refuses_what_it_cannot_answer(cli, retail):
    failed(
        cli("rate", "lookup", "+33612345678", "--tariff", "retail"), 3, "no rate for +33612345678 in tariff 'retail'"
    )
    failed(cli("rate", "lookup", "+447700900123", "--tariff", "ghost"), 3, "no tariff 'ghost'")
    failed(cli("rate", "lookup", "07700900123", "--tariff", "retail"), 2, "not in international format")
    failed(cli("rate", "lookup", UK_MOBILE, "--tariff", "retail", "--at", "soon"), 2, "--at 'soon': expected a date")
    failed(cli("rate", "lookup", UK_MOBILE, "--tariff", "retail", "--seconds", "-1"), 2, "--seconds '-1'")
    failed(cli("rate", "lookup", UK_MOBILE, "--tariff", "retail", "--credit", "0.1.2"), 2, "is not an amount")
    usage = cli("rate", "lookup", UK_MOBILE)
    assert usage.code == 2 and "--tariff" in usage.err


# --- cdr rerate ----------------------------------------------------------------------------------


@pytest.fixture
def calls(cli, db, retail) -> list[str]:
    """Three calls of alice to a UK mobile at 0.01 + 0.20/min: 31 s (0.13) and 90 s (0.31) in January, 60 s
    (0.21) in February."""
    ok(cli("account", "create", "alice", "--currency", "USD", "--tariff", "retail"))
    ok(cli("account", "topup", "alice", "10", "--reference", "inv-1"))
    legs = []
    with transaction(db) as session:
        alice = session.execute(select(Account.id).where(Account.login == "alice")).scalar_one()
    for day, seconds in [(0, 31), (1, 90), (40, 60)]:
        answered = T0 + timedelta(days=day)
        with transaction(db) as session:
            leg_id = new_leg(session, new_call(session, alice), UK_MOBILE, answered_at=answered)
            cdrs.settle(session, leg_id, now=answered, ended_at=answered + timedelta(seconds=seconds))
        legs.append(leg_id)
    return legs


def cdr_costs(db) -> list[Decimal]:
    with transaction(db) as session:
        return session.execute(select(Cdr.cost).order_by(Cdr.answer_time)).scalars().all()


def balance(cli) -> str:
    return fields(ok(cli("account", "show", "alice")))["balance"]


def test_rerate_posts_each_difference_once(cli, db, calls):
    assert cdr_costs(db) == [Decimal("0.13"), Decimal("0.31"), Decimal("0.21")]
    # The operator corrects the mobile price (same prefix and date: the rate is replaced).
    fix = "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment\n"
    ok(cli("tariff", "import", "retail", "-", stdin=fix + "447,United Kingdom mobile,0.10,0.01,30,6\n"))
    arguments = ["cdr", "rerate", "--from", "2027-01-01", "--to", "2027-02-01", "--run-id", "fix-447"]

    preview = ok(cli(*arguments, "--dry-run"))
    assert preview == (
        "dry run fix-447: 2 CDRs examined, 2 changed, 0 already done by this run, 0 without a rate; "
        "credited 0.210000 USD\nnothing was applied\n"
    )
    assert cdr_costs(db)[:2] == [Decimal("0.13"), Decimal("0.31")]

    assert ok(cli(*arguments)) == (
        "run fix-447: 2 CDRs examined, 2 changed, 0 already done by this run, 0 without a rate; credited 0.210000 USD\n"
    )
    assert cdr_costs(db) == [Decimal("0.07"), Decimal("0.16"), Decimal("0.21")]  # February untouched
    assert balance(cli) == "9.560000"  # 10 - 0.07 - 0.16 - 0.21
    with transaction(db) as session:
        adjustments = session.execute(
            select(LedgerEntry.reference, LedgerEntry.amount).where(LedgerEntry.kind == LedgerKind.ADJUSTMENT)
        ).all()
    assert sorted(adjustments) == sorted(
        [(f"rerate:fix-447:{calls[0]}", Decimal("0.06")), (f"rerate:fix-447:{calls[1]}", Decimal("0.15"))]
    )

    again = ok(cli(*arguments))
    assert "2 CDRs examined, 0 changed, 2 already done by this run" in again and "credited nothing" in again
    assert balance(cli) == "9.560000"


def test_rerate_with_another_tariff_for_one_account(cli, db, calls):
    ok(cli("tariff", "create", "promo", "--currency", "USD"))
    ok(cli("tariff", "import", "promo", "-", stdin="prefix,destination,price_per_minute\n44,UK promo,0.06\n"))

    out = ok(
        cli("cdr", "rerate", "--from", "2027-01-01", "--to", "2027-03-01", "--tariff", "promo", "--account", "alice")
    )

    assert out.startswith("run run-") and "3 CDRs examined, 3 changed" in out
    assert cdr_costs(db) == [Decimal("0.06"), Decimal("0.12"), Decimal("0.06")]
    with transaction(db) as session:
        assert session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one() == 7  # 1 + 3 + 3


def test_rerate_refuses_bad_input(cli, calls):
    period = ["--from", "2027-01-01", "--to", "2027-02-01"]
    failed(cli("cdr", "rerate", "--from", "January", "--to", "2027-02-01"), 2, "--from 'January'")
    failed(cli("cdr", "rerate", "--from", "2027-02-01", "--to", "2027-01-01"), 2, "--to must be after --from")
    failed(cli("cdr", "rerate", *period, "--run-id", "no spaces"), 2, "is not a run id")
    failed(cli("cdr", "rerate", *period, "--tariff", "ghost"), 3, "no tariff 'ghost'")
    failed(cli("cdr", "rerate", *period, "--account", "ghost"), 3, "no account 'ghost'")
    usage = cli("cdr", "rerate", "--from", "2027-01-01")
    assert usage.code == 2 and "--to" in usage.err
    assert balance(cli) == "9.350000"  # nothing changed: 10 - 0.13 - 0.31 - 0.21
