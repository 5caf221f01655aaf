"""The SQL of the rating engine's hot paths, built once at import (except the balance update of
several accounts, `set_balances`, whose shape depends on how many).

Building a SQLAlchemy statement costs several times more than executing a prebuilt one (which
SQLAlchemy compiles once and caches), and reserve, extend and settle run for every call. They are
executed on the session's connection (`run`), with the column types of the models, so money is
still exact micro-units and times UTC. Their writes bypass the ORM: `run` flushes the session
first, and the ledger expires an Account object the session may hold when it changes the balance.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Result, bindparam, case, insert, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from boomerang.store.models import (
    Account,
    CallbackSession,
    CallLeg,
    Cdr,
    LedgerEntry,
    Rate,
    Reservation,
    ReservationState,
)


def run(session: Session, statement: Executable, parameters: dict | list[dict] | None = None) -> Result:
    """Execute on the session's connection; a list of parameter sets executes the statement for
    each (a single multi-row INSERT where the database allows)."""
    session.flush()  # so that rows the caller added in this transaction are visible
    return session.connection().execute(statement, parameters)


# Reserve and settle work on batches of legs (one leg is a batch of one): the statements take
# lists of legs and accounts, so a batch costs the same few statements as a single leg.
LEGS = (
    select(
        CallLeg.id.label("leg_id"),
        CallLeg.session_id,
        CallLeg.role,
        CallLeg.number,
        CallLeg.answered_at,
        CallLeg.ended_at,
        CallbackSession.account_id,
    )
    .join(CallbackSession, CallbackSession.id == CallLeg.session_id)
    .where(CallLeg.id.in_(bindparam("legs", expanding=True)))
)
# The same with the id of the leg's reservation in any state, read before any lock.
LEGS_WITH_RESERVATION = LEGS.add_columns(Reservation.id.label("reservation_id")).outerjoin(
    Reservation, Reservation.leg_id == CallLeg.id
)

# Each column read costs the driver work on every call: only what the money code uses.
ACCOUNT_COLUMNS = (
    Account.id,
    Account.status,
    Account.currency,
    Account.balance,
    Account.credit_limit,
    Account.max_concurrent_calls,
    Account.tariff_id,
    Account.callback_tariff_id,
)
PEEK_ACCOUNT = select(*ACCOUNT_COLUMNS).where(Account.id == bindparam("account_id"))
LOCK_ACCOUNT = PEEK_ACCOUNT.with_for_update()
# Several accounts are locked in id order, as every transaction locking more than one does, so two
# batches cannot deadlock on each other's accounts.
LOCK_ACCOUNTS = (
    select(*ACCOUNT_COLUMNS)
    .where(Account.id.in_(bindparam("account_ids", expanding=True)))
    .order_by(Account.id)
    .with_for_update()
)
SET_BALANCE = (
    update(Account.__table__).where(Account.id == bindparam("account_id")).values(balance=bindparam("new_balance"))
)
INSERT_LEDGER_ENTRY = insert(LedgerEntry.__table__)


def set_balances(new_balances: dict[int, Decimal]) -> tuple[Executable, dict]:
    """One UPDATE giving each account (by id) its new balance, with its parameters."""
    if len(new_balances) == 1:
        [(account_id, balance)] = new_balances.items()
        return SET_BALANCE, {"account_id": account_id, "new_balance": balance}
    money = Account.__table__.c.balance.type
    balance = case(*[(Account.id == account_id, literal(value, money)) for account_id, value in new_balances.items()])
    statement = update(Account.__table__).where(Account.id.in_(list(new_balances))).values(balance=balance)
    return statement, {}


# What a reservation was made at: fixed when it is made, never changed afterwards.
RESERVATION_TERMS = (
    Reservation.rate_id,
    Reservation.prefix,
    Reservation.destination,
    Reservation.price_per_minute,
    Reservation.connect_fee,
    Reservation.initial_increment,
    Reservation.subsequent_increment,
    Reservation.minimum_duration,
    Reservation.grace_seconds,
    Reservation.rounding_mode,
    Reservation.rounding_digits,
    Reservation.created_at,
)
# What changes while it is held (only under the account's lock).
RESERVATION_STATE = (
    Reservation.id.label("reservation_id"),
    Reservation.account_id,
    Reservation.session_id,
    Reservation.leg_id,
    Reservation.state,
    Reservation.granted_seconds,
    Reservation.amount,
    Reservation.standby,
    Reservation.expires_at,
)
RESERVATION_COLUMNS = RESERVATION_STATE + RESERVATION_TERMS

_active = (Reservation.account_id == bindparam("account_id")) & (Reservation.state == ReservationState.ACTIVE)
# The account's reservations holding credit at `now`: what they hold, for which leg and call.
HOLDING = select(Reservation.leg_id, Reservation.session_id, Reservation.amount, Reservation.standby).where(
    _active, Reservation.expires_at > bindparam("now")
)
HOLDING_OF_ACCOUNTS = select(
    Reservation.account_id,
    Reservation.id.label("reservation_id"),
    Reservation.leg_id,
    Reservation.session_id,
    Reservation.amount,
    Reservation.standby,
).where(
    Reservation.account_id.in_(bindparam("account_ids", expanding=True)),
    Reservation.state == ReservationState.ACTIVE,
    Reservation.expires_at > bindparam("now"),
)
# The same with what extending changes, and the active reservations of the legs `legs` even if
# they expired.
HOLDING_OR_LEGS = select(
    Reservation.id.label("reservation_id"),
    Reservation.leg_id,
    Reservation.session_id,
    Reservation.amount,
    Reservation.standby,
    Reservation.expires_at,
    Reservation.granted_seconds,
).where(
    _active,
    or_(Reservation.expires_at > bindparam("now"), Reservation.leg_id.in_(bindparam("legs", expanding=True))),
)
RESERVATION_OF_LEG = select(*RESERVATION_COLUMNS).where(Reservation.leg_id == bindparam("leg_id"))
RESERVATIONS_OF_LEGS = select(*RESERVATION_COLUMNS).where(Reservation.leg_id.in_(bindparam("legs", expanding=True)))
# Settling locks the accounts (in id order) and reads the legs' reservations, if any, in one
# statement: a row per reservation of the legs `legs`, or one with no reservation for an account
# that has none of them.
LOCK_ACCOUNTS_WITH_RESERVATIONS = (
    select(
        *ACCOUNT_COLUMNS,
        Reservation.leg_id,
        Reservation.id.label("reservation_id"),
        Reservation.state,
        Reservation.granted_seconds,
        *[column for column in RESERVATION_TERMS if column.key not in ("prefix", "created_at")],
    )
    .select_from(Account)
    .outerjoin(
        Reservation,
        (Reservation.account_id == Account.id) & Reservation.leg_id.in_(bindparam("legs", expanding=True)),
    )
    .where(Account.id.in_(bindparam("account_ids", expanding=True)))
    .order_by(Account.id)
    .with_for_update()
)
INSERT_RESERVATION = insert(Reservation.__table__)
EXTEND_RESERVATION = (
    update(Reservation.__table__)
    .where(Reservation.id == bindparam("reservation_id"))
    .values(
        granted_seconds=bindparam("new_granted"),
        amount=bindparam("new_amount"),
        expires_at=bindparam("new_expiry"),
        updated_at=bindparam("now"),
    )
)
# Leg B of a callback takes over the standby its leg A held for it.
DROP_STANDBY = (
    update(Reservation.__table__)
    .where(Reservation.id == bindparam("reservation_id"))
    .values(amount=Reservation.amount - Reservation.standby, standby=0, updated_at=bindparam("now"))
)
CLOSE_RESERVATION = (
    update(Reservation.__table__)
    .where(Reservation.id == bindparam("reservation_id"), Reservation.state == ReservationState.ACTIVE)
    .values(state=bindparam("new_state"), updated_at=bindparam("now"))
)
CLOSE_RESERVATIONS = (
    update(Reservation.__table__)
    .where(
        Reservation.id.in_(bindparam("reservation_ids", expanding=True)),
        Reservation.state == ReservationState.ACTIVE,
    )
    .values(state=bindparam("new_state"), updated_at=bindparam("now"))
)

ANSWER_TIMES = select(CallLeg.id, CallLeg.answered_at).where(CallLeg.id.in_(bindparam("legs", expanding=True)))
RATE_SINCE = select(Rate.effective_from).where(Rate.id == bindparam("rate_id"))
# The new CDRs' ids, in the order of the rows given (one multi-row INSERT where the database can).
INSERT_CDRS = insert(Cdr.__table__).returning(Cdr.__table__.c.id, sort_by_parameter_order=True)
