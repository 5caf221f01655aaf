"""Connect-two requests on SQLite and MariaDB: what is queued, what is refused before anything is
dialled, and cancelling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from boomerang.store import transaction
from boomerang.store.models import Account, AccountStatus, CallbackKind, CallbackSession
from callback import requests
from callback.requests import Refusal, RequestRefused
from rating.tariff_cache import TariffCache
from tests.ratingkit import T0, make_account, make_tariff

RATES = "prefix,destination,price_per_minute\n44,United Kingdom,0.10\n1,US and Canada,0.05\n"
A, B = "447700900123", "12025550143"


@pytest.fixture
def accounts(db):
    with transaction(db) as session:
        make_tariff(session, "retail", RATES)
        ids = {
            "alice": make_account(session, "alice", tariff="retail", balance="5", max_calls=2),
            "bob": make_account(session, "bob", tariff="retail", balance="5"),
            "broke": make_account(session, "broke", tariff="retail", balance="0"),
        }
    return ids


def ask(db, login: str, a: str = A, b: str = B, at=T0, ref: str | None = None) -> str:
    with transaction(db) as session:
        account = session.execute(select(Account).where(Account.login == login)).scalar_one()
        queued = requests.connect_two(
            session, TariffCache(check_interval=0), account, a, b,
            kind=CallbackKind.WEB, request_ref=ref or f"web:{login}:{a}:{b}:{at.isoformat()}", now=at,
            delay=timedelta(seconds=1),
        )  # fmt: skip
        return queued.id


def refused(db, login: str, **kwargs) -> Refusal:
    with pytest.raises(RequestRefused) as refusal:
        ask(db, login, **kwargs)
    return refusal.value.refusal


def sessions_of(db, login: str) -> list[CallbackSession]:
    with transaction(db) as session:
        account_id = session.execute(select(Account.id).where(Account.login == login)).scalar_one()
        return list(session.execute(select(CallbackSession).where(CallbackSession.account_id == account_id)).scalars())


def test_a_request_is_queued_as_a_connect_two_session(db, accounts):
    session_id = ask(db, "alice")
    [queued] = sessions_of(db, "alice")
    assert (queued.id, queued.caller_number, queued.destination_number) == (session_id, A, B)
    assert queued.connect_two and queued.state == "requested" and queued.kind is CallbackKind.WEB
    assert queued.due_at == T0 + timedelta(seconds=1)


def test_refusals_come_before_anything_is_queued(db, accounts):
    assert refused(db, "alice", b=A) is Refusal.SAME_NUMBER
    assert refused(db, "alice", b="861012345678") is Refusal.NO_RATE
    assert refused(db, "broke") is Refusal.INSUFFICIENT_CREDIT
    with transaction(db) as session:
        session.execute(select(Account).where(Account.login == "bob")).scalar_one().status = AccountStatus.SUSPENDED
    assert refused(db, "bob") is Refusal.ACCOUNT_UNAVAILABLE
    with transaction(db) as session:
        assert session.execute(select(func.count()).select_from(CallbackSession)).scalar_one() == 0


def test_the_same_pair_again_within_seconds_is_refused_and_calls_are_limited(db, accounts):
    ask(db, "alice")
    assert refused(db, "alice", at=T0 + timedelta(seconds=5)) is Refusal.REPEAT
    ask(db, "alice", b="12025550144", at=T0 + timedelta(seconds=6))  # another pair: fine
    # alice may have two calls going: a third is refused until one ends.
    assert refused(db, "alice", b="12025550145", at=T0 + timedelta(seconds=7)) is Refusal.TOO_MANY
    assert len(sessions_of(db, "alice")) == 2


def test_cancel_ends_a_queued_call_at_once_and_only_for_its_account(db, accounts):
    mine = ask(db, "alice")
    with transaction(db) as session:
        assert requests.cancel(session, accounts["bob"], mine, T0) is False  # not bob's
    assert sessions_of(db, "alice")[0].state == "requested"
    with transaction(db) as session:
        assert requests.cancel(session, accounts["alice"], mine, T0 + timedelta(seconds=1)) is True
    [cancelled] = sessions_of(db, "alice")
    assert (cancelled.state, cancelled.end_reason) == ("ended", "cancelled")
    assert cancelled.cancel_requested_at == T0 + timedelta(seconds=1)
    with transaction(db) as session:
        assert requests.cancel(session, accounts["alice"], mine, T0) is False  # over already
