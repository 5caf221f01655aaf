"""Administration: accounts (and their money, caller IDs and calls), tariffs, gateways, access numbers,
live calls, the SMS log and the ledger. Every resource here is for administrators only.

The rules are those of boomerang/provisioning.py, which the command line uses too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import falcon
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from boomerang import provisioning
from boomerang.numbers import InvalidNumber, to_e164
from boomerang.store.models import (
    AccessNumber,
    Account,
    AccountStatus,
    AuthorizedCallerId,
    Gateway,
    LedgerEntry,
    LedgerKind,
    NumberFormat,
    Role,
    SmsDirection,
    SmsEgress,
    SmsMessage,
    Tariff,
)
from boomerang.store.types import utcnow
from callback import requests
from portal import customer, history, pagination, representations
from portal.auth import admin_only
from portal.database import Database
from portal.validation import Body
from rating.pricing import Leg, max_duration
from rating.rates_csv import ALWAYS
from rating.tariff_cache import TariffCache

MAX_RATES_CSV_BYTES = 20 * 1024 * 1024


def tariff_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Tariff.id, Tariff.name)).all())


def account_view(session: Session, account: Account) -> dict:
    return representations.account(account, tariff_names(session))


def _nullable_text(body: Body, name: str, max_length: int):
    """A text field that may be null (to clear it); returns (given, value)."""
    if name not in body.fields:
        return False, None
    if body.fields[name] is None:
        body.taken.add(name)
        return True, None
    return True, body.text(name, max_length=max_length)


def account_settings(body: Body) -> dict:
    """The ACCOUNT_SETTINGS fields present in the body."""
    changes = {}
    for name in ("tariff", "callback_tariff"):
        given, value = _nullable_text(body, name, 64)
        if given:
            changes[name] = value
    if body.has("credit_limit"):
        changes["credit_limit"] = body.amount("credit_limit")
    if body.has("language"):
        changes["language"] = body.text("language", max_length=8)
    given, value = _nullable_text(body, "country_code", 3)
    if given:
        changes["country_code"] = value
    for name in ("max_concurrent_calls", "max_caller_ids"):
        if body.has(name):
            changes[name] = body.integer(name, 0, 1000)
    for name in ("show_b_to_a", "show_a_to_b"):
        if body.has(name):
            changes[name] = body.boolean(name)
    return changes


def _set_secrets(session: Session, secret: bytes, login: str, body: Body) -> None:
    password = body.text("password", required=False, max_length=1024)
    pin = body.text("pin", required=False, max_length=32)
    body.done()
    if password is not None:
        provisioning.set_password(session, login, password)
    if pin is not None:
        provisioning.set_pin(session, secret, login, pin)


# --- accounts -------------------------------------------------------------------------------------


@falcon.before(admin_only)
class Accounts:
    """/api/admin/accounts: list (filter by login start, status, role) and create."""

    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self.secret = secret

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = pagination.requested_page(req)
        query = select(Account).order_by(Account.login)
        if login := req.get_param("q"):
            query = query.where(Account.login.startswith(login, autoescape=True))
        if status := req.get_param("status"):
            if status not in {s.value for s in AccountStatus}:
                raise falcon.HTTPBadRequest(title="Invalid parameter", description="status: active, suspended, closed")
            query = query.where(Account.status == AccountStatus(status))
        with self.db.read() as session:
            accounts, total = pagination.fetch(session, query, page)
            names = tariff_names(session)
            items = [representations.account(account, names) for account in accounts]
        resp.media = pagination.envelope(req, page, items, total)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        login = body.text("login", max_length=64)
        currency = body.text("currency", max_length=3)
        role = body.choice("role", [r.value for r in Role], default=Role.CUSTOMER.value)
        settings = account_settings(body)
        spec = provisioning.AccountSpec(
            login=login,
            currency=currency,
            role=Role(role),
            tariff=settings.pop("tariff", None),
            callback_tariff=settings.pop("callback_tariff", None),
            credit_limit=settings.pop("credit_limit", None) or Decimal(0),
            language=settings.pop("language", "en"),
            country_code=settings.pop("country_code", None),
            max_concurrent_calls=settings.pop("max_concurrent_calls", 2),
        )
        with self.db.write() as session:
            account = provisioning.create_account(session, spec)
            if settings:
                provisioning.update_account(session, login, settings)
            _set_secrets(session, self.secret, login, body)
            resp.media = account_view(session, account)
        resp.status = falcon.HTTP_201
        resp.location = f"/api/admin/accounts/{login}"


@falcon.before(admin_only)
class AccountResource:
    """/api/admin/accounts/{login}: show, change settings, status, password or PIN."""

    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self.secret = secret

    def on_get(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        with self.db.read() as session:
            resp.media = account_view(session, provisioning.get_account(session, login))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        body = Body.json(req)
        status = body.choice("status", [s.value for s in AccountStatus])
        settings = account_settings(body)
        if status is not None and status != AccountStatus.ACTIVE and login == req.context.principal.login:
            raise falcon.HTTPConflict(title="Conflict", description="you cannot suspend or close your own account")
        with self.db.write() as session:
            account = provisioning.get_account(session, login)
            if settings:
                provisioning.update_account(session, login, settings)
            if status is not None:
                provisioning.set_status(session, login, AccountStatus(status))
            _set_secrets(session, self.secret, login, body)
            session.flush()
            resp.media = account_view(session, account)


@falcon.before(admin_only)
class AccountLedger:
    """/api/admin/accounts/{login}/ledger: the account's entries; top up or adjust with a reason."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        page = pagination.requested_page(req)
        with self.db.read() as session:
            account = provisioning.get_account(session, login)
            query = select(LedgerEntry).where(LedgerEntry.account_id == account.id).order_by(LedgerEntry.id.desc())
            entries, total = pagination.fetch(session, query, page)
            items = [representations.ledger_entry(entry, login) for entry in entries]
        resp.media = pagination.envelope(req, page, items, total)

    def on_post(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        body = Body.json(req)
        kind = body.choice("kind", [LedgerKind.TOPUP.value, LedgerKind.ADJUSTMENT.value], required=True)
        amount = body.amount("amount", allow_negative=kind == LedgerKind.ADJUSTMENT)
        reason = body.text("reason")
        reference = body.text("reference", required=False, max_length=128)
        body.done()
        by = req.context.principal.login
        with self.db.write() as session:
            if kind == LedgerKind.TOPUP:
                posting = provisioning.top_up(session, login, amount, reference, note=reason, by=by)
            else:
                posting = provisioning.adjust(session, login, amount, reason, reference, by=by)
            resp.media = representations.ledger_entry(posting.entry, login)
        resp.status = falcon.HTTP_201 if posting.created else falcon.HTTP_200


@falcon.before(admin_only)
class AccountCallerIds:
    """/api/admin/accounts/{login}/caller-ids: list and add (no per-account limit for administrators)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        page = pagination.requested_page(req)
        with self.db.read() as session:
            account = provisioning.get_account(session, login)
            query = select(AuthorizedCallerId).where(AuthorizedCallerId.account_id == account.id)
            found, total = pagination.fetch(session, query.order_by(AuthorizedCallerId.number), page)
            items = [representations.caller_id(record) for record in found]
        resp.media = pagination.envelope(req, page, items, total)

    def on_post(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        body = Body.json(req)
        number = body.text("number", max_length=32)
        body.done()
        with self.db.write() as session:
            resp.media = representations.caller_id(provisioning.add_caller_id(session, login, number))
        resp.status = falcon.HTTP_201


@falcon.before(admin_only)
class AccountCallerId:
    """/api/admin/accounts/{login}/caller-ids/{number}: remove one."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_delete(self, req: falcon.Request, resp: falcon.Response, login: str, number: str) -> None:
        with self.db.write() as session:
            provisioning.remove_account_caller_id(session, login, number)
        resp.status = falcon.HTTP_204


@falcon.before(admin_only)
class AccountCalls:
    """/api/admin/accounts/{login}/calls: the account's call history, as its holder sees it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        with self.db.read() as session:
            account = provisioning.get_account(session, login)
            resp.media = customer.call_page(session, req, account.id)


# --- tariffs --------------------------------------------------------------------------------------


@falcon.before(admin_only)
class Tariffs:
    """/api/admin/tariffs: list and create."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            items = [representations.tariff(tariff, rates) for tariff, rates in provisioning.tariffs(session)]
        page = pagination.requested_page(req)
        resp.media = pagination.envelope(req, page, items[page.offset : page.offset + page.size], len(items))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        name = body.text("name", max_length=64)
        currency = body.text("currency", max_length=3)
        description = body.text("description", required=False, default="")
        body.done()
        with self.db.write() as session:
            resp.media = representations.tariff(provisioning.create_tariff(session, name, currency, description), 0)
        resp.status = falcon.HTTP_201


@falcon.before(admin_only)
class TariffResource:
    """/api/admin/tariffs/{name}."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        with self.db.read() as session:
            found = {tariff.name: (tariff, rates) for tariff, rates in provisioning.tariffs(session)}
            if name not in found:
                raise provisioning.NotFound(f"no tariff {name!r}")
            resp.media = representations.tariff(*found[name])


@falcon.before(admin_only)
class TariffRatesCsv:
    """/api/admin/tariffs/{name}/rates.csv: export (GET) and import (PUT, all or nothing)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        with self.db.read() as session:
            resp.text = provisioning.export_rates(session, name)
        resp.content_type = "text/csv; charset=utf-8"
        resp.downloadable_as = f"{name}.csv"

    def on_put(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if not (req.content_type or "").startswith("text/csv"):
            raise falcon.HTTPUnsupportedMediaType(description="send the rates as text/csv")
        if (req.content_length or 0) > MAX_RATES_CSV_BYTES:
            raise falcon.HTTPPayloadTooLarge(description=f"at most {MAX_RATES_CSV_BYTES} bytes")
        try:
            text = req.bounded_stream.read().decode("utf-8")
        except UnicodeDecodeError:
            raise falcon.HTTPBadRequest(title="Invalid CSV", description="the file is not UTF-8") from None
        with self.db.write() as session:
            added, replaced = provisioning.import_rates(session, name, text)
        resp.media = {"added": added, "replaced": replaced}


def rate_lookup(session: Session, cache: TariffCache, name: str, req: falcon.Request, now: datetime) -> dict:
    tariff = provisioning.get_tariff(session, name)
    text = req.get_param("number", required=True)
    try:
        number = to_e164(text)
    except InvalidNumber as exc:
        raise provisioning.InvalidInput(str(exc)) from None
    seconds = req.get_param_as_int("seconds", min_value=0, max_value=86400)
    entry = cache.get(session, tariff.id).lookup(number, now)
    if entry is None:
        raise provisioning.NotFound(f"no rate for +{number} in tariff {name!r}")
    price = entry.price
    found = {
        "number": "+" + number,
        "tariff": name,
        "prefix": entry.prefix,
        "destination": entry.destination,
        "currency": tariff.currency,
        "price_per_minute": representations.money(price.per_minute),
        "connect_fee": representations.money(price.connect_fee),
        "initial_increment": price.initial_increment,
        "subsequent_increment": price.subsequent_increment,
        "minimum_duration": price.minimum_duration,
        "grace_seconds": price.grace_seconds,
        "effective_from": None if entry.effective_from == ALWAYS else representations.moment(entry.effective_from),
    }
    if seconds is not None:
        found["billed_seconds"] = price.billed_seconds(seconds)
        found["cost"] = representations.money(price.cost(seconds))
    credit = req.get_param("credit")
    if credit is not None:
        found["max_call_seconds"] = max_duration([Leg(price)], provisioning.parse_amount(credit))
    return found


@falcon.before(admin_only)
class TariffRateLookup:
    """/api/admin/tariffs/{name}/rate?number=&seconds=&credit=: the rate in force for a number."""

    def __init__(self, db: Database, cache: TariffCache, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.cache = cache
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        with self.db.read() as session:
            resp.media = rate_lookup(session, self.cache, name, req, self.clock())


# --- gateways and access numbers ----------------------------------------------------------------


def gateway_settings(body: Body) -> dict:
    changes = {}
    for name, length in (("uri", 255), ("add_prefix", 16)):
        if body.has(name):
            changes[name] = body.text(name, max_length=length)
    for name, length in (("trusted_source", 64), ("country_code", 3), ("kannel_sendsms_url", 255)):
        given, value = _nullable_text(body, name, length)
        if given:
            changes[name] = value
    if body.has("priority"):
        changes["priority"] = body.integer("priority", 0, 1000)
    if body.has("strip_digits"):
        changes["strip_digits"] = body.integer("strip_digits", 0, 15)
    if body.has("number_format"):
        changes["number_format"] = NumberFormat(body.choice("number_format", [f.value for f in NumberFormat]))
    if body.has("sms_egress"):
        changes["sms_egress"] = SmsEgress(body.choice("sms_egress", [e.value for e in SmsEgress]))
    return changes


@falcon.before(admin_only)
class Gateways:
    """/api/admin/gateways: carrier gateways, by priority."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            query = select(Gateway).order_by(Gateway.priority, Gateway.name)
            resp.media = pagination.listed(req, session, query, representations.gateway)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        name = body.text("name", max_length=64)
        settings = gateway_settings(body)
        enabled = body.boolean("enabled")
        body.done()
        if "uri" not in settings:
            raise falcon.HTTPBadRequest(title="Missing field", description="uri is required")
        with self.db.write() as session:
            gateway = provisioning.add_gateway(session, provisioning.GatewaySpec(name=name, **settings))
            if enabled is not None:
                gateway.enabled = enabled
            resp.media = representations.gateway(gateway)
        resp.status = falcon.HTTP_201


@falcon.before(admin_only)
class GatewayResource:
    """/api/admin/gateways/{name}: show, change (enable or disable too)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        with self.db.read() as session:
            resp.media = representations.gateway(provisioning.get_gateway(session, name))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        body = Body.json(req)
        settings = gateway_settings(body)
        enabled = body.boolean("enabled")
        body.done()
        with self.db.write() as session:
            resp.media = representations.gateway(provisioning.update_gateway(session, name, settings, enabled))


def access_number_settings(body: Body) -> dict:
    changes = {}
    if body.has("label"):
        changes["label"] = body.text("label", max_length=100)
    if body.has("language"):
        changes["language"] = body.text("language", max_length=8)
    for name, low, high in (
        ("ring_time_seconds", 1, 60),
        ("callback_delay_seconds", 0, 60),
        ("retry_attempts", 0, 10),
        ("retry_interval_seconds", 0, 86400),
    ):
        if body.has(name):
            changes[name] = body.integer(name, low, high)
    for name in ("allow_pin", "allow_ani", "known_callers_only", "save_caller_id_on_pin", "announce_balance"):
        if body.has(name):
            changes[name] = body.boolean(name)
    return changes


@falcon.before(admin_only)
class AccessNumbers:
    """/api/admin/access-numbers: the numbers callers dial, and their callback settings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            query = select(AccessNumber).order_by(AccessNumber.number)
            resp.media = pagination.listed(req, session, query, representations.access_number)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = Body.json(req)
        number = body.text("number", max_length=15)
        settings = access_number_settings(body)
        enabled = body.boolean("enabled")
        body.done()
        with self.db.write() as session:
            record = provisioning.add_access_number(session, provisioning.AccessNumberSpec(number=number, **settings))
            if enabled is not None:
                record.enabled = enabled
            resp.media = representations.access_number(record)
        resp.status = falcon.HTTP_201


@falcon.before(admin_only)
class AccessNumberResource:
    """/api/admin/access-numbers/{number}: show, change its callback settings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, number: str) -> None:
        with self.db.read() as session:
            resp.media = representations.access_number(provisioning.get_access_number(session, number))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, number: str) -> None:
        body = Body.json(req)
        settings = access_number_settings(body)
        enabled = body.boolean("enabled")
        body.done()
        with self.db.write() as session:
            record = provisioning.update_access_number(session, number, settings, enabled)
            resp.media = representations.access_number(record)


# --- calls, SMS, ledger ---------------------------------------------------------------------------


def live_calls(session: Session, req: falcon.Request) -> dict:
    page = pagination.requested_page(req)
    query = history.CallFilter(active_only=True).query()
    calls, total = pagination.fetch(session, query, page)
    logins = dict(session.execute(select(Account.id, Account.login)).all()) if calls else {}
    items = [
        described | {"account": logins.get(call.account_id)}
        for call, described in zip(calls, history.describe(session, calls), strict=True)
    ]
    return pagination.envelope(req, page, items, total)


@falcon.before(admin_only)
class LiveCalls:
    """/api/admin/calls: callback sessions that have not ended, newest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            resp.media = live_calls(session, req)


@falcon.before(admin_only)
class LiveCall:
    """DELETE /api/admin/calls/{callback_id}: hang up a call (its controller does, within a second);
    POST /admin/calls/{callback_id}/hangup does the same from the live calls page."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _hang_up(self, callback_id: str) -> None:
        with self.db.write() as session:
            if not requests.hang_up(session, callback_id, utcnow()):
                raise falcon.HTTPNotFound(title="No such live call", description=f"no call {callback_id!r} is going")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, callback_id: str) -> None:
        self._hang_up(callback_id)
        resp.status = falcon.HTTP_202
        resp.media = {"id": callback_id, "hanging_up": True}

    def on_post_hangup(self, req: falcon.Request, resp: falcon.Response, callback_id: str) -> None:
        self._hang_up(callback_id)
        raise falcon.HTTPSeeOther("/admin/calls")


def sms_page(session: Session, req: falcon.Request) -> dict:
    page = pagination.requested_page(req)
    query = select(SmsMessage).order_by(SmsMessage.id.desc())
    if direction := req.get_param("direction"):
        if direction not in {d.value for d in SmsDirection}:
            raise falcon.HTTPBadRequest(title="Invalid parameter", description="direction: inbound or outbound")
        query = query.where(SmsMessage.direction == SmsDirection(direction))
    if number := req.get_param("number"):
        number = number.strip().lstrip("+")
        query = query.where(or_(SmsMessage.sender == number, SmsMessage.receiver == number))
    messages, total = pagination.fetch(session, query, page)
    return pagination.envelope(req, page, [representations.sms(message) for message in messages], total)


@falcon.before(admin_only)
class SmsLog:
    """/api/admin/sms: every text received and sent, newest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            resp.media = sms_page(session, req)


def ledger_page(session: Session, req: falcon.Request) -> dict:
    page = pagination.requested_page(req)
    query = select(LedgerEntry, Account.login).join(Account, Account.id == LedgerEntry.account_id)
    if login := req.get_param("account"):
        query = query.where(Account.login == login)
    if kind := req.get_param("kind"):
        if kind not in {k.value for k in LedgerKind}:
            raise falcon.HTTPBadRequest(
                title="Invalid parameter", description="kind: topup, charge, refund or adjustment"
            )
        query = query.where(LedgerEntry.kind == LedgerKind(kind))
    rows, total = pagination.fetch(session, query.order_by(LedgerEntry.id.desc()), page)
    return pagination.envelope(req, page, [representations.ledger_entry(e, login) for e, login in rows], total)


@falcon.before(admin_only)
class Ledger:
    """/api/admin/ledger: every balance change, newest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            resp.media = ledger_page(session, req)
