"""Helpers for the rating tests: tariffs, accounts and call legs as the platform creates them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from boomerang import provisioning
from boomerang.store.models import (
    Account,
    CallbackKind,
    CallbackSession,
    CallLeg,
    Cdr,
    LedgerEntry,
    LegRole,
    LegStatus,
    Reservation,
    ReservationState,
)

T0 = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
UK_MOBILE = "447700900123"
US = "14155550100"
UK_LANDLINE = "442071234567"
# The tariff of the leg calling the customer back, in the tests where it differs from leg B's.
CALLBACK = "prefix,destination,price_per_minute\n44,United Kingdom (callback),0.02\n"


def make_tariff(session: Session, name: str, csv: str, currency: str = "USD") -> int:
    provisioning.create_tariff(session, name, currency)
    provisioning.import_rates(session, name, csv)
    return provisioning.get_tariff(session, name).id


def make_account(
    session: Session,
    login: str,
    *,
    tariff: str | None,
    callback_tariff: str | None = None,
    balance: str = "0",
    credit_limit: str = "0",
    max_calls: int = 10,
) -> int:
    spec = provisioning.AccountSpec(
        login=login,
        currency="USD",
        tariff=tariff,
        callback_tariff=callback_tariff,
        credit_limit=Decimal(credit_limit),
        max_concurrent_calls=max_calls,
    )
    account = provisioning.create_account(session, spec)
    if Decimal(balance):
        provisioning.top_up(session, login, Decimal(balance), reference=f"initial:{login}")
    return account.id


def new_call(session: Session, account_id: int, caller: str = UK_MOBILE) -> str:
    """A callback session of the account; returns its id."""
    call = CallbackSession(
        kind=CallbackKind.WEB, account_id=account_id, caller_number=caller, state="dialing", due_at=T0
    )
    session.add(call)
    session.flush()
    return call.id


def new_leg(
    session: Session,
    call_id: str,
    number: str,
    role: LegRole = LegRole.B,
    answered_at: datetime | None = None,
    sequence: int = 0,
) -> str:
    leg = CallLeg(
        session_id=call_id,
        role=role,
        sequence=sequence,
        number=number,
        status=LegStatus.ANSWERED if answered_at else LegStatus.DIALING,
        answered_at=answered_at,
    )
    session.add(leg)
    session.flush()
    return leg.id


def balance(session: Session, account_id: int) -> Decimal:
    query = select(Account.balance).where(Account.id == account_id).execution_options(populate_existing=True)
    return session.execute(query).scalar_one()


def ledger_sum(session: Session, account_id: int) -> Decimal:
    total = session.execute(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == account_id))
    return total.scalar_one() or Decimal(0)


def cdr_cost_sum(session: Session, account_id: int) -> Decimal:
    return session.execute(select(func.sum(Cdr.cost)).where(Cdr.account_id == account_id)).scalar_one() or Decimal(0)


def active_reservations(session: Session, account_id: int) -> int:
    query = select(func.count()).where(
        Reservation.account_id == account_id, Reservation.state == ReservationState.ACTIVE
    )
    return session.execute(query).scalar_one()
