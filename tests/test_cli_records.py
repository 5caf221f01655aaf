"""`boomerang cdr list` and `boomerang ledger list`: what was rated and charged, newest first.

Exit codes (boomerang/cli/main.py): 0 done, 2 invalid input or usage, 3 not found.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from boomerang.store.models import (
    Account,
    CallbackKind,
    CallbackSession,
    CallLeg,
    Cdr,
    LedgerKind,
    LegRole,
    LegStatus,
)
from rating import ledger
from tests.clikit import failed, ok, table

CDR_HEADER = "answered\tsession\tleg\tnumber\tdestination\tseconds\tbilled\tcost\tcurrency\n"
LEDGER_HEADER = "time\tkind\tamount\tbalance\treference\tdescription\n"
BAD_LIMITS = ["0", "100001", "abc", "1.5", "²"]


def account_id(session, login: str) -> int:
    return session.execute(select(Account.id).where(Account.login == login)).scalar_one()


def add_cdr(
    db,
    login: str,
    answered: datetime,
    *,
    role: LegRole = LegRole.B,
    number: str = "33612345678",
    destination: str = "France mobile",
    seconds: int = 61,
    billed: int = 120,
    cost: str = "0.240000",
) -> str:
    """A rated call as the call controller records it: session, leg and CDR. Returns the session id."""
    with db() as session, session.begin():
        callback = CallbackSession(
            kind=CallbackKind.ACCESS,
            account_id=account_id(session, login),
            caller_number="447700900123",
            state="ended",
            due_at=answered - timedelta(seconds=10),
        )
        leg = CallLeg(
            session=callback,
            role=role,
            number=number,
            status=LegStatus.ENDED,
            answered_at=answered,
            ended_at=answered + timedelta(seconds=seconds),
        )
        session.add_all([callback, leg])
        session.flush()
        session.add(
            Cdr(
                leg_id=leg.id,
                session_id=callback.id,
                account_id=callback.account_id,
                role=role,
                number=number,
                destination=destination,
                answer_time=answered,
                end_time=answered + timedelta(seconds=seconds),
                duration_seconds=seconds,
                billed_seconds=billed,
                price_per_minute=Decimal("0.12"),
                connect_fee=Decimal(0),
                cost=Decimal(cost),
                currency="USD",
            )
        )
        return callback.id


@pytest.fixture
def accounts(cli) -> None:
    ok(cli("account", "create", "alice", "--currency", "USD"))
    ok(cli("account", "create", "bob", "--currency", "USD"))


# --- cdr list ------------------------------------------------------------------------------------


def test_cdr_list_newest_first_by_account_and_limit(cli, db, accounts):
    assert ok(cli("cdr", "list")) == CDR_HEADER  # no calls yet
    assert ok(cli("cdr", "list", "--account", "alice")) == CDR_HEADER
    morning = datetime(2027, 1, 5, 9, 0, 0, 250000, tzinfo=UTC)
    first = add_cdr(db, "alice", morning + timedelta(hours=1), role=LegRole.A, number="447700900123", destination="")
    second = add_cdr(db, "alice", morning + timedelta(hours=1, minutes=5), cost="0.240000")
    other = add_cdr(db, "bob", morning, number="14155550100", destination="United States", seconds=7, billed=30)

    rows = table(ok(cli("cdr", "list")))

    assert [row["session"] for row in rows] == [second, first, other]
    assert rows[0] == {
        "answered": "2027-01-05T10:05:00+00:00",
        "session": second,
        "leg": "B",
        "number": "+33612345678",
        "destination": "France mobile",
        "seconds": "61",
        "billed": "120",
        "cost": "0.240000",
        "currency": "USD",
    }
    assert (rows[1]["leg"], rows[1]["number"], rows[1]["destination"]) == ("A", "+447700900123", "")
    assert [row["session"] for row in table(ok(cli("cdr", "list", "--account", "alice")))] == [second, first]
    assert [row["session"] for row in table(ok(cli("cdr", "list", "--account", "bob")))] == [other]
    assert [row["session"] for row in table(ok(cli("cdr", "list", "--limit", "1")))] == [second]
    assert [row["session"] for row in table(ok(cli("cdr", "list", "--account", "bob", "--limit", "100000")))] == [other]


def test_cdr_list_refuses_an_unknown_account_or_a_bad_limit(cli, db, accounts):
    add_cdr(db, "alice", datetime(2027, 1, 5, 10, 0, tzinfo=UTC))

    failed(cli("cdr", "list", "--account", "ghost"), 3, "no account 'ghost'")
    for limit in BAD_LIMITS:
        failed(cli("cdr", "list", "--limit", limit), 2, f"--limit {limit!r}: expected 1 to 100000")
    usage = cli("cdr", "list", "--limit")
    assert usage.code == 2 and "usage: boomerang" in usage.err

    assert len(table(ok(cli("cdr", "list")))) == 1


# --- ledger list ---------------------------------------------------------------------------------


def test_ledger_list_newest_first(cli, db, accounts):
    assert ok(cli("ledger", "list", "alice")) == LEDGER_HEADER
    ok(cli("account", "topup", "alice", "10", "--reference", "inv-1", "--note", "bank transfer"))
    with db() as session, session.begin():  # a call charged by the rating engine
        ledger.post(session, account_id(session, "alice"), LedgerKind.CHARGE, Decimal("-0.24"), "cdr:1", "call")
    ok(cli("account", "topup", "bob", "3", "--reference", "inv-2"))
    ok(cli("account", "topup", "alice", "0.5", "--reference", "inv-3"))

    rows = table(ok(cli("ledger", "list", "alice")))

    assert [(r["kind"], r["amount"], r["balance"], r["reference"], r["description"]) for r in rows] == [
        ("topup", "0.500000", "10.260000", "inv-3", "top-up"),
        ("charge", "-0.240000", "9.760000", "cdr:1", "call"),
        ("topup", "10.000000", "10.000000", "inv-1", "bank transfer"),
    ]
    assert all(datetime.fromisoformat(row["time"]).tzinfo is not None for row in rows)
    assert [row["reference"] for row in table(ok(cli("ledger", "list", "alice", "--limit", "2")))] == [
        "inv-3",
        "cdr:1",
    ]
    assert [row["reference"] for row in table(ok(cli("ledger", "list", "bob")))] == ["inv-2"]
    with db() as session:
        assert session.execute(select(Account.balance).where(Account.login == "alice")).scalar_one() == Decimal("10.26")


def test_ledger_list_refuses_an_unknown_account_or_a_bad_limit(cli, accounts):
    ok(cli("account", "topup", "alice", "10"))

    failed(cli("ledger", "list", "ghost"), 3, "no account 'ghost'")
    for limit in BAD_LIMITS:
        failed(cli("ledger", "list", "alice", "--limit", limit), 2, f"--limit {limit!r}: expected 1 to 100000")
    usage = cli("ledger", "list")
    assert usage.code == 2 and "login" in usage.err

    assert len(table(ok(cli("ledger", "list", "alice")))) == 1
