"""Asking for a callback of a known account (web callback, SMS "CB", "CB <number>" and "CB <A> <B>")
and cancelling one: the checks every request passes before a session is queued, whoever asks, and
the credit for its legs reserved before anything is dialled. The controller's scheduler places queued
sessions when due and stops those whose cancellation was asked for.

Blocking SQLAlchemy; runs inside the caller's transaction.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from boomerang.store.models import (
    Account,
    AccountStatus,
    CallbackKind,
    CallbackSession,
    CallLeg,
    LegEvent,
    LegRole,
    LegStatus,
)
from callback.store import add_leg
from rating import credit, ledger
from rating.decisions import Reason
from rating.tariff_cache import TariffCache

REPEAT_WINDOW = timedelta(seconds=30)  # the same pair again this soon is a double click, not a new call
FINAL_STATES = ("ended", "failed")


class Refusal(enum.StrEnum):
    """Why a request is refused; each has a message a user can act on (MESSAGES)."""

    ACCOUNT_UNAVAILABLE = "account_unavailable"
    SAME_NUMBER = "same_number"
    REPEAT = "repeat"
    TOO_MANY = "too_many"
    NO_RATE = "no_rate"
    INSUFFICIENT_CREDIT = "insufficient_credit"


MESSAGES = {
    Refusal.ACCOUNT_UNAVAILABLE: "This account cannot make calls.",
    Refusal.SAME_NUMBER: "The two numbers are the same.",
    Refusal.REPEAT: "These two numbers are being connected already; wait a moment before asking again.",
    Refusal.TOO_MANY: "Too many calls of this account are running; wait for one to end.",
    Refusal.NO_RATE: "Calls to +{number} are not available.",
    Refusal.INSUFFICIENT_CREDIT: "Your credit is not enough for a call to +{number}.",
}


REFUSALS_BY_REASON = {
    Reason.NO_RATE: Refusal.NO_RATE,
    Reason.INSUFFICIENT_CREDIT: Refusal.INSUFFICIENT_CREDIT,
    Reason.ACCOUNT_SUSPENDED: Refusal.ACCOUNT_UNAVAILABLE,
    Reason.TOO_MANY_CALLS: Refusal.TOO_MANY,
}


class RequestRefused(Exception):
    def __init__(self, refusal: Refusal, number: str = "") -> None:
        super().__init__(MESSAGES[refusal].format(number=number))
        self.refusal = refusal


def connect_two(
    session: Session,
    tariffs: TariffCache,
    account: Account,
    a: str,
    b: str,
    *,
    kind: CallbackKind,
    request_ref: str,
    now: datetime,
    delay: timedelta = timedelta(0),
) -> CallbackSession:
    """Queue a call to `a` (E.164), then `b`, bridged, paid by `account`, with the credit for both
    legs' first chunks reserved; or raise RequestRefused before anything is dialled."""
    if account.status is not AccountStatus.ACTIVE:
        raise RequestRefused(Refusal.ACCOUNT_UNAVAILABLE)
    if a == b:
        raise RequestRefused(Refusal.SAME_NUMBER)
    _lock(session, account)  # requests of one account one after the other, from here on
    mine = (CallbackSession.account_id == account.id) & CallbackSession.connect_two.is_(True)
    repeat = session.execute(
        select(CallbackSession.id).where(
            mine,
            CallbackSession.caller_number == a,
            CallbackSession.destination_number == b,
            CallbackSession.requested_at >= now - REPEAT_WINDOW,
        )
    ).first()
    if repeat is not None:
        raise RequestRefused(Refusal.REPEAT)
    return _reserved_ahead(session, tariffs, account, a, b, connect_two=True, kind=kind, request_ref=request_ref,
                           now=now, delay=delay)  # fmt: skip


def call_back(
    session: Session,
    tariffs: TariffCache,
    account: Account,
    caller: str,
    destination: str | None,
    *,
    kind: CallbackKind,
    request_ref: str,
    now: datetime,
    delay: timedelta = timedelta(0),
) -> CallbackSession:
    """Queue a regular callback of an identified account (an SMS "CB" or "CB <number>"): the caller,
    then the destination named, or asked for on the phone; or raise RequestRefused before anything
    is dialled. Leg A's first chunk is reserved, with the destination's (or a standby for it)."""
    if account.status is not AccountStatus.ACTIVE:
        raise RequestRefused(Refusal.ACCOUNT_UNAVAILABLE)
    _lock(session, account)
    return _reserved_ahead(session, tariffs, account, caller, destination, connect_two=False, kind=kind,
                           request_ref=request_ref, now=now, delay=delay)  # fmt: skip


def _lock(session: Session, account: Account) -> None:
    """The account's row lock, taken before anything of the request is written: the rows written
    refer to the account, which on MariaDB takes a shared lock on its row, and two requests each
    holding that and waiting for the exclusive lock credit control takes would deadlock."""
    ledger.lock(session, account.id)


def _reserved_ahead(
    session: Session,
    tariffs: TariffCache,
    account: Account,
    a: str,
    b: str | None,
    *,
    connect_two: bool,
    kind: CallbackKind,
    request_ref: str,
    now: datetime,
    delay: timedelta,
) -> CallbackSession:
    """The session and its legs, queued, with their credit reserved (in the caller's transaction,
    under the account's lock: concurrent requests cannot together take more than the credit, nor
    more calls than `max_concurrent_calls`). Refused: nothing of it is written."""
    savepoint = session.begin_nested()
    queued = CallbackSession(
        kind=kind,
        account_id=account.id,
        caller_number=a,
        destination_number=b,
        connect_two=connect_two,
        request_ref=request_ref,
        state="requested",
        requested_at=now,
        due_at=now + delay,
    )
    session.add(queued)
    session.flush()
    legs = [add_leg(session, queued.id, LegRole.A, 1, a, now)]
    if b is not None:
        legs.append(add_leg(session, queued.id, LegRole.B, 1, b, now))
    standby = legs[:1] if b is None else []
    decisions = credit.reserve_many(session, tariffs, legs, now=now, standby=standby)
    for number, decision in zip((a, b), decisions, strict=False):
        if not decision.allowed:
            savepoint.rollback()
            raise RequestRefused(REFUSALS_BY_REASON[decision.reason], number)
    savepoint.commit()
    return queued


def cancel(session: Session, account_id: int, session_id: str, now: datetime) -> bool:
    """Stop one of the account's callbacks: one not yet placed ends at once; a running one is hung
    up by its controller within a second. False when the account has no such callback still going."""
    return _stop(session, session_id, now, CallbackSession.account_id == account_id)


def hang_up(session: Session, session_id: str, now: datetime) -> bool:
    """An operator stops any callback still going (the live calls page), as `cancel` does."""
    return _stop(session, session_id, now)


def _stop(session: Session, session_id: str, now: datetime, *conditions) -> bool:
    found = session.execute(
        select(CallbackSession).where(
            CallbackSession.id == session_id, CallbackSession.state.not_in(FINAL_STATES), *conditions
        )
    ).scalar_one_or_none()
    if found is None:
        return False
    not_placed = session.execute(
        update(CallbackSession)
        .where(CallbackSession.id == session_id, CallbackSession.state == "requested")
        .values(state="ended", end_reason="cancelled", ended_at=now)
    ).rowcount
    found.cancel_requested_at = now
    if not_placed:  # its credit, reserved when it was asked for, is free again at once
        for leg in session.execute(select(CallLeg).where(CallLeg.session_id == session_id)).scalars():
            credit.release(session, leg.id, now=now)
            if leg.ended_at is None:
                leg.status, leg.ended_at = LegStatus.CANCELLED, now
                session.add(LegEvent(leg_id=leg.id, status=LegStatus.CANCELLED, at=now, detail="not placed"))
    return True
