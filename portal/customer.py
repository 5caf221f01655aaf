"""The customer's own account: dashboard, authorized caller IDs, PIN, call history, ledger, rates.

Every resource here works on the signed-in account only (`req.context.principal`): no path or
parameter names an account, so no request can reach another one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import falcon
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from boomerang import provisioning
from boomerang.numbers import InvalidNumber, to_e164
from boomerang.store.models import Account, AuthorizedCallerId, CallbackSession, LedgerEntry
from boomerang.store.types import utcnow
from portal import history, pagination, representations
from portal.auth import Authenticator, SignInRefused, signed_in
from portal.database import Database
from portal.validation import Body
from rating import credit
from rating.pricing import Leg, max_duration
from rating.rates_csv import ALWAYS
from rating.tariff_cache import TariffCache

RECENT_CALLS = 5


def dashboard(session: Session, account_id: int, now: datetime) -> dict:
    account = session.get(Account, account_id)
    money = credit.credit(session, account_id, now)
    caller_ids = session.execute(
        select(func.count(AuthorizedCallerId.id)).where(AuthorizedCallerId.account_id == account_id)
    ).scalar_one()
    recent = history.CallFilter(account_id=account_id).query().limit(RECENT_CALLS)
    return {
        "login": account.login,
        "role": str(account.role),
        "status": str(account.status),
        "currency": account.currency,
        "balance": representations.money(money.balance),
        "credit_limit": representations.money(money.credit_limit),
        "reserved": representations.money(money.reserved),
        "available_credit": representations.money(money.free),
        "active_calls": money.calls,
        "language": account.language,
        "caller_ids": caller_ids,
        "max_caller_ids": account.max_caller_ids,
        "has_pin": account.pin_digest is not None,
        "recent_calls": history.describe(session, list(session.execute(recent).scalars())),
    }


def rate_for(session: Session, cache: TariffCache, account_id: int, text: str, now: datetime) -> dict:
    """What a call to this number costs the account, and how long its available credit lasts there."""
    try:
        number = to_e164(text)
    except InvalidNumber as exc:
        raise provisioning.InvalidInput(str(exc)) from None
    account = session.get(Account, account_id)
    if account.tariff_id is None:
        raise provisioning.NotFound("your account has no tariff yet: ask your provider")
    entry = cache.get(session, account.tariff_id).lookup(number, now)
    if entry is None:
        raise provisioning.NotFound(f"+{number} cannot be called with your tariff")
    price = entry.price
    free = credit.credit(session, account_id, now).free
    return {
        "number": "+" + number,
        "prefix": entry.prefix,
        "destination": entry.destination,
        "currency": account.currency,
        "price_per_minute": representations.money(price.per_minute),
        "connect_fee": representations.money(price.connect_fee),
        "initial_increment": price.initial_increment,
        "subsequent_increment": price.subsequent_increment,
        "minimum_duration": price.minimum_duration,
        "grace_seconds": price.grace_seconds,
        "effective_from": None if entry.effective_from == ALWAYS else representations.moment(entry.effective_from),
        "cost_of_one_minute": representations.money(price.cost(60)),
        # The destination leg alone: the call back to the customer may cost too.
        "max_call_seconds": max_duration([Leg(price)], free) if free > 0 else 0,
    }


def call_page(session: Session, req: falcon.Request, account_id: int | None) -> dict:
    page = pagination.requested_page(req, default_size=25)
    calls, total = pagination.fetch(session, history.CallFilter.from_request(req, account_id).query(), page)
    return pagination.envelope(req, page, history.describe(session, calls), total)


def calls_csv(session: Session, req: falcon.Request, account_id: int | None) -> str:
    query = history.CallFilter.from_request(req, account_id).query().limit(history.CSV_MAX_CALLS)
    return history.as_csv(history.describe(session, list(session.execute(query).scalars())))


@falcon.before(signed_in)
class Dashboard:
    """/api/me: balance, available credit and recent calls."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            resp.media = dashboard(session, req.context.principal.account_id, self.clock())


@falcon.before(signed_in)
class CallerIds:
    """/api/me/caller-ids: the numbers that identify the account without a PIN."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = select(AuthorizedCallerId).where(AuthorizedCallerId.account_id == req.context.principal.account_id)
        query = query.order_by(AuthorizedCallerId.number)
        with self.db.read() as session:
            resp.media = pagination.listed(req, session, query, representations.caller_id)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        number = body.text("number", max_length=32)
        body.done()
        with self.db.write() as session:
            record = provisioning.add_caller_id_within_limit(session, req.context.principal.login, number)
            resp.media = representations.caller_id(record)
        resp.status = falcon.HTTP_201
        resp.location = f"/api/me/caller-ids/{record.number}"


@falcon.before(signed_in)
class CallerId:
    """/api/me/caller-ids/{number}: remove one."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_delete(self, req: falcon.Request, resp: falcon.Response, number: str) -> None:
        with self.db.write() as session:
            provisioning.remove_account_caller_id(session, req.context.principal.login, number)
        resp.status = falcon.HTTP_204


@falcon.before(signed_in)
class Pin:
    """/api/me/pin: set a new PIN, confirmed with the password."""

    def __init__(self, db: Database, authenticator: Authenticator, secret: bytes) -> None:
        self.db = db
        self.authenticator = authenticator
        self.secret = secret

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        password = body.text("password", max_length=1024)
        pin = body.text("pin", max_length=32)
        body.done()
        principal = req.context.principal
        try:
            self.authenticator.verify_password(principal, password, req.remote_addr or "")
        except SignInRefused as refused:
            raise refused.as_http_error() from None
        with self.db.write() as session:
            provisioning.set_pin(session, self.secret, principal.login, pin)
        resp.status = falcon.HTTP_204


@falcon.before(signed_in)
class Calls:
    """/api/me/calls: call history, newest first, each leg with its cost."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            resp.media = call_page(session, req, req.context.principal.account_id)


@falcon.before(signed_in)
class CallsCsv:
    """/api/me/calls.csv: the same history as CSV, one line per leg."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            resp.text = calls_csv(session, req, req.context.principal.account_id)
        resp.content_type = "text/csv; charset=utf-8"
        resp.downloadable_as = "calls.csv"


@falcon.before(signed_in)
class Call:
    """/api/me/calls/{call_id}: one call of the account."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        with self.db.read() as session:
            call = session.execute(
                select(CallbackSession).where(
                    CallbackSession.id == call_id, CallbackSession.account_id == req.context.principal.account_id
                )
            ).scalar_one_or_none()
            if call is None:
                raise falcon.HTTPNotFound(title="Not found", description="you have no such call")
            resp.media = history.describe(session, [call])[0]


@falcon.before(signed_in)
class Ledger:
    """/api/me/ledger: the account's balance changes, newest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = select(LedgerEntry).where(LedgerEntry.account_id == req.context.principal.account_id)
        query = query.order_by(LedgerEntry.id.desc())
        with self.db.read() as session:
            resp.media = pagination.listed(req, session, query, representations.ledger_entry)


@falcon.before(signed_in)
class RateLookup:
    """/api/me/rate?number=...: the price of calling a number."""

    def __init__(self, db: Database, cache: TariffCache, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.cache = cache
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        number = req.get_param("number", required=True)
        with self.db.read() as session:
            resp.media = rate_for(session, self.cache, req.context.principal.account_id, number, self.clock())
