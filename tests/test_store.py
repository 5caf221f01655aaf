"""The data model on real SQLite and MariaDB: migrations, exact money, UTC times, constraints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from boomerang.store import make_engine, migrate, transaction
from boomerang.store.models import (
    Account,
    AuthorizedCallerId,
    Base,
    CallbackKind,
    CallbackSession,
    CallerIdOrigin,
    CallLeg,
    LegEvent,
    LegRole,
    LegStatus,
)
from boomerang.store.types import MoneyPrecisionError

TABLES = {table.name for table in Base.metadata.sorted_tables}


def test_migrations_upgrade_downgrade_round_trip(settings):
    url = settings.database_url
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert TABLES <= set(inspect(engine).get_table_names())

        migrate.downgrade(url, "base")
        assert migrate.current_revision(engine) is None
        assert not TABLES & set(inspect(engine).get_table_names())

        migrate.upgrade(url)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_match_the_models(migrated):
    """A model change without its migration shows up here as a difference."""
    engine = make_engine(migrated.database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def _account(session, login="alice", **fields) -> Account:
    account = Account(login=login, currency="USD", **fields)
    session.add(account)
    session.flush()
    return account


def test_money_is_exact_and_refuses_floats(db):
    with transaction(db) as session:
        _account(session, balance=Decimal("0.1") + Decimal("0.2"), credit_limit=Decimal("12.345678"))
    with transaction(db) as session:
        account = session.execute(select(Account)).scalar_one()
        assert account.balance == Decimal("0.3") and isinstance(account.balance, Decimal)
        assert account.credit_limit == Decimal("12.345678")
        # Sums are computed in SQL on integer micro-units: still exact.
        assert session.execute(select(func.sum(Account.balance))).scalar_one() == Decimal("0.3")

    with pytest.raises(StatementError) as error, transaction(db) as session:
        _account(session, "bob", balance=0.1)
    assert isinstance(error.value.orig, TypeError)
    with pytest.raises(StatementError) as error, transaction(db) as session:
        _account(session, "carol", balance=Decimal("0.0000001"))
    assert isinstance(error.value.orig, MoneyPrecisionError)


def test_times_are_stored_in_utc_with_microseconds(db):
    local = datetime(2027, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    with transaction(db) as session:
        session.add(
            CallbackSession(
                id="s1", kind=CallbackKind.ACCESS, caller_number="447700900123", state="queued", due_at=local
            )
        )
    with transaction(db) as session:
        due = session.get(CallbackSession, "s1").due_at
    assert due == local
    assert due.tzinfo == UTC and due.hour == 1 and due.microsecond == 678901


def test_a_caller_id_belongs_to_one_account_only(db):
    with transaction(db) as session:
        alice, bob = _account(session, "alice"), _account(session, "bob")
        session.add(AuthorizedCallerId(account_id=alice.id, number="447700900123", origin=CallerIdOrigin.MANUAL))
    with pytest.raises(IntegrityError), transaction(db) as session:
        session.add(AuthorizedCallerId(account_id=bob.id, number="447700900123", origin=CallerIdOrigin.PIN))
    with transaction(db) as session:
        owners = session.execute(select(AuthorizedCallerId.account_id)).scalars().all()
    assert owners == [alice.id]


def test_the_database_refuses_values_outside_an_enumeration(db):
    """The CHECK constraints hold even for writes that bypass the ORM."""
    # SQLite reports an integrity error, MariaDB an operational one (4025): both name the constraint.
    with pytest.raises(DBAPIError, match="ck_accounts_role"), transaction(db) as session:
        session.execute(
            text(
                "INSERT INTO accounts (login, role, status, currency, balance, credit_limit, language, "
                "max_concurrent_calls, created_at, updated_at) VALUES ('x', 'root', 'active', 'USD', 0, 0, "
                "'en', 1, '2027-01-01 00:00:00', '2027-01-01 00:00:00')"
            )
        )


def test_a_leg_keeps_its_status_timeline_in_order(db):
    with transaction(db) as session:
        callback = CallbackSession(
            kind=CallbackKind.WEB, caller_number="447700900123", state="dialing", due_at=datetime.now(UTC)
        )
        leg = CallLeg(session=callback, role=LegRole.A, number="447700900123")
        session.add_all([callback, leg])
        session.flush()
        for status in (LegStatus.DIALING, LegStatus.RINGING, LegStatus.ANSWERED, LegStatus.ENDED):
            session.add(LegEvent(leg_id=leg.id, status=status))
        leg_id = leg.id
    with transaction(db) as session:
        timeline = [event.status for event in session.get(CallLeg, leg_id).events]
    assert timeline == [LegStatus.DIALING, LegStatus.RINGING, LegStatus.ANSWERED, LegStatus.ENDED]


def test_keys_compare_exactly_on_every_database(db):
    """Case and trailing spaces count in ledger references and logins, on MariaDB as on SQLite."""
    with transaction(db) as session:
        _account(session, "demo")
        _account(session, "Demo")
        _account(session, "demo ")
    with transaction(db) as session:
        found = session.execute(select(Account.login).where(Account.login == "DEMO")).scalars().all()
        logins = sorted(session.execute(select(Account.login)).scalars())
    assert found == []
    assert logins == ["Demo", "demo", "demo "]


def test_read_only_sessions_do_not_wait_for_a_writer(settings, migrated):
    """On SQLite a reader proceeds while another connection holds the write lock."""
    from boomerang.store import read_only_factory, session_factory

    engine = make_engine(migrated.database_url)
    try:
        with transaction(session_factory(engine)) as writer:
            _account(writer, "alice")
            with read_only_factory(engine)() as reader:
                # The writer's uncommitted account is invisible; the read returns at once.
                assert reader.execute(select(func.count(Account.id))).scalar_one() == 0
    finally:
        engine.dispose()
