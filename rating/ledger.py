"""The money ledger: the only way an account's balance changes.

Each change is an append-only entry with a unique reference. Posting a reference that already
exists changes nothing and returns the earlier entry, so retrying a top-up or charging the same
CDR twice moves money once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from boomerang.store.models import Account, AccountStatus, LedgerEntry, LedgerKind
from boomerang.store.types import utcnow
from rating import queries


class LedgerError(ValueError):
    """An entry that must not be posted (wrong sign, unknown account, reference clash)."""


@dataclass(frozen=True)
class Posting:
    entry: LedgerEntry
    created: bool  # False: the reference existed and nothing changed


_SIGN_RULES = {
    LedgerKind.TOPUP: (lambda amount: amount > 0, "a top-up must be positive"),
    LedgerKind.REFUND: (lambda amount: amount > 0, "a refund must be positive"),
    LedgerKind.CHARGE: (lambda amount: amount < 0, "a charge must be negative"),
    LedgerKind.ADJUSTMENT: (lambda amount: amount != 0, "an adjustment must not be zero"),
}


def _check(kind: LedgerKind, amount: Decimal, reference: str) -> None:
    if not isinstance(amount, Decimal):
        raise LedgerError(f"amount must be a Decimal, not {type(amount).__name__}")
    valid, rule = _SIGN_RULES[kind]
    if not valid(amount):
        raise LedgerError(rule)
    if not reference or len(reference) > 128:
        raise LedgerError("a ledger reference is 1 to 128 characters")


def post(
    session: Session,
    account_id: int,
    kind: LedgerKind,
    amount: Decimal,
    reference: str,
    description: str = "",
    created_by: str = "",
) -> Posting:
    """Apply `amount` (signed: positive credits) to the account, once per reference."""
    _check(kind, amount, reference)
    # Lock the account row first: postings to one account are serialised, so the reference check
    # below cannot race with a concurrent posting of the same reference to the same account.
    account = lock_account(session, account_id)
    if account is None:
        raise LedgerError(f"no account with id {account_id}")
    existing = session.execute(select(LedgerEntry).where(LedgerEntry.reference == reference)).scalar_one_or_none()
    if existing is not None:
        if existing.account_id != account_id or existing.kind != kind or existing.amount != amount:
            raise LedgerError(f"reference {reference!r} was already used for a different entry")
        return Posting(existing, created=False)

    account.balance = account.balance + amount
    entry = LedgerEntry(
        account_id=account_id,
        kind=kind,
        amount=amount,
        balance_after=account.balance,
        reference=reference,
        description=description,
        created_by=created_by,
    )
    session.add(entry)
    session.flush()
    return Posting(entry, created=True)


def lock_account(session: Session, account_id: int) -> Account | None:
    """The account, its row locked for this transaction and its attributes read after the lock.

    Every change to an account's money (ledger entries, credit reservations) is made holding this
    lock. `populate_existing` matters: an Account this session loaded before the lock would
    otherwise keep its old balance, and a posting would add to a balance that another transaction
    has since changed. (SQLite has no row locks; its transactions begin IMMEDIATE, which
    serialises them whole.)
    """
    query = select(Account).where(Account.id == account_id).with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


@dataclass
class LockedAccount:
    """What money code needs of an account whose row this transaction has locked (see `lock`)."""

    id: int
    status: AccountStatus
    currency: str
    balance: Decimal
    credit_limit: Decimal
    max_concurrent_calls: int
    tariff_id: int | None
    callback_tariff_id: int | None


def lock(session: Session, account_id: int) -> LockedAccount | None:
    """Lock the account's row, as `lock_account` does, reading only the columns money code uses.

    The rating engine's hot paths use this one: a narrow row, and no ORM object to keep in step.
    """
    row = queries.run(session, queries.LOCK_ACCOUNT, {"account_id": account_id}).one_or_none()
    return None if row is None else LockedAccount(*row)


def peek(session: Session, account_id: int) -> LockedAccount | None:
    """The same columns without the lock: for decisions that change nothing."""
    row = queries.run(session, queries.PEEK_ACCOUNT, {"account_id": account_id}).one_or_none()
    return None if row is None else LockedAccount(*row)


def append(
    session: Session,
    account: LockedAccount,
    kind: LedgerKind,
    amount: Decimal,
    reference: str,
    description: str = "",
    created_by: str = "",
) -> Decimal:
    """Add an entry with a new reference to an account locked by `lock`; returns the new balance.

    For callers that know the reference is new because something else they hold locked says so
    (a leg's charge is posted with the leg's CDR, which is unique): no lookup of the reference.
    The unique reference still refuses a duplicate, failing the transaction.
    """
    append_all(session, [NewEntry(account, kind, amount, reference, description, created_by)])
    return account.balance


@dataclass(frozen=True)
class NewEntry:
    """An entry for `append_all`: its account locked by `lock` in this transaction."""

    account: LockedAccount
    kind: LedgerKind
    amount: Decimal
    reference: str
    description: str = ""
    created_by: str = ""


def append_all(session: Session, new_entries: Sequence[NewEntry]) -> None:
    """`append` for several entries at once (one INSERT, one balance update per account), in order:
    each entry's `balance_after` follows the previous entries of its account. The LockedAccount
    objects are updated to their new balances."""
    if not new_entries:
        return
    for new in new_entries:
        _check(new.kind, new.amount, new.reference)
    rows = []
    created_at = utcnow()
    for new in new_entries:
        new.account.balance += new.amount
        rows.append(
            {
                "account_id": new.account.id,
                "kind": new.kind,
                "amount": new.amount,
                "balance_after": new.account.balance,
                "reference": new.reference,
                "description": new.description,
                "created_by": new.created_by,
                "created_at": created_at,
            }
        )
    queries.run(session, queries.INSERT_LEDGER_ENTRY, rows)
    accounts = {new.account.id: new.account for new in new_entries}
    queries.run(session, *queries.set_balances({account.id: account.balance for account in accounts.values()}))
    for account_id in accounts:
        held = session.identity_map.get(session.identity_key(Account, account_id))
        if held is not None:  # an Account the caller loaded: its balance is out of date now
            session.expire(held)


def entries(session: Session, account_id: int, limit: int = 100) -> list[LedgerEntry]:
    """The account's most recent entries, newest first."""
    query = select(LedgerEntry).where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.id.desc())
    return list(session.execute(query.limit(limit)).scalars())
