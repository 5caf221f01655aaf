"""HTML pages for administrators: the same operations as the administration API (portal/admin.py),
as server-rendered forms."""

from __future__ import annotations

import falcon
from sqlalchemy import select

from boomerang import provisioning
from boomerang.store.models import Account, AccountStatus, LedgerEntry, Role
from boomerang.store.types import utcnow
from portal import admin, customer, html, pagination, representations
from portal.auth import admin_only
from portal.database import Database
from portal.pages import form_error, notice, redirect
from portal.validation import Body
from rating.tariff_cache import TariffCache

_REFUSED = (provisioning.ProvisioningError, falcon.HTTPBadRequest)


def _status_of(error: Exception) -> str:
    if isinstance(error, provisioning.NotFound):
        return falcon.HTTP_404
    if isinstance(error, provisioning.Conflict):
        return falcon.HTTP_409
    return falcon.HTTP_400


def _blank_to_none(body: Body, *names: str) -> None:
    # An empty form field means "none" for the settings that may be unset (tariff, country code...).
    for name in names:
        if body.fields.get(name) == "":
            body.fields[name] = None


class AdminHome:
    @falcon.before(admin_only)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPSeeOther("/admin/accounts")


@falcon.before(admin_only)
class AccountsPage:
    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self.secret = secret

    def _show(self, req, resp, status=falcon.HTTP_200, error="") -> None:
        page = pagination.requested_page(req)
        query = select(Account).order_by(Account.login)
        if login := req.get_param("q"):
            query = query.where(Account.login.startswith(login, autoescape=True))
        with self.db.read() as session:
            accounts, total = pagination.fetch(session, query, page)
            names = admin.tariff_names(session)
            listed = pagination.envelope(req, page, [representations.account(a, names) for a in accounts], total)
            tariffs = sorted(names.values())
        html.respond(
            resp,
            req,
            "admin_accounts.html",
            status,
            accounts=listed,
            tariffs=tariffs,
            q=req.get_param("q", default=""),
            error=error,
            notice=notice(req),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = Body.form(req)
            _blank_to_none(body, "tariff", "password")
            login = body.text("login", max_length=64)
            spec = provisioning.AccountSpec(
                login=login,
                currency=body.text("currency", max_length=3),
                role=Role(body.choice("role", [r.value for r in Role], default="customer")),
                tariff=body.text("tariff", required=False, max_length=64),
            )
            password = body.text("password", required=False, max_length=1024)
            body.done()
            with self.db.write() as session:
                provisioning.create_account(session, spec)
                if password:
                    provisioning.set_password(session, login, password)
        except _REFUSED as error:
            self._show(req, resp, _status_of(error), form_error(error))
            return
        raise redirect(f"/admin/accounts/{login}", "added")


@falcon.before(admin_only)
class AccountPage:
    """/admin/accounts/{login} and its forms: settings, status, ledger, caller IDs, password, PIN."""

    def __init__(self, db: Database, secret: bytes) -> None:
        self.db = db
        self.secret = secret

    def _show(self, req, resp, login: str, status=falcon.HTTP_200, error="") -> None:
        with self.db.read() as session:
            account = provisioning.get_account(session, login)
            shown = admin.account_view(session, account)
            money = customer.dashboard(session, account.id, utcnow())
            entries = session.execute(
                select(LedgerEntry)
                .where(LedgerEntry.account_id == account.id)
                .order_by(LedgerEntry.id.desc())
                .limit(20)
            ).scalars()
            ledger = [representations.ledger_entry(entry) for entry in entries]
            numbers = [representations.caller_id(c) for c in provisioning.caller_ids(session, login)]
            tariffs = sorted(admin.tariff_names(session).values())
        html.respond(
            resp,
            req,
            "admin_account.html",
            status,
            account=shown,
            money=money,
            ledger=ledger,
            numbers=numbers,
            tariffs=tariffs,
            error=error,
            notice=notice(req),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        self._show(req, resp, login)

    def _act(self, req, resp, login: str, action, done: str) -> None:
        try:
            body = Body.form(req)
            with self.db.write() as session:
                action(session, body)
        except _REFUSED as error:
            self._show(req, resp, login, _status_of(error), form_error(error))
            return
        raise redirect(f"/admin/accounts/{login}", done)

    def on_post_settings(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        def change(session, body: Body) -> None:
            _blank_to_none(body, "tariff", "callback_tariff", "country_code")
            settings = admin.account_settings(body)
            body.done()
            provisioning.update_account(session, login, settings)

        self._act(req, resp, login, change, "saved")

    def on_post_status(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        def change(session, body: Body) -> None:
            status = body.choice("status", [s.value for s in AccountStatus], required=True)
            body.done()
            if status != AccountStatus.ACTIVE and login == req.context.principal.login:
                raise provisioning.Conflict("you cannot suspend or close your own account")
            provisioning.set_status(session, login, AccountStatus(status))

        self._act(req, resp, login, change, "saved")

    def on_post_ledger(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        def post(session, body: Body) -> None:
            kind = body.choice("kind", ["topup", "adjustment"], required=True)
            amount = body.amount("amount", allow_negative=kind == "adjustment")
            reason = body.text("reason")
            body.done()
            by = req.context.principal.login
            if kind == "topup":
                provisioning.top_up(session, login, amount, note=reason, by=by)
            else:
                provisioning.adjust(session, login, amount, reason, by=by)

        self._act(req, resp, login, post, "posted")

    def on_post_caller_ids(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        def add(session, body: Body) -> None:
            number = body.text("number", max_length=32)
            body.done()
            provisioning.add_caller_id(session, login, number)

        self._act(req, resp, login, add, "added")

    def on_post_remove_caller_id(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        def remove(session, body: Body) -> None:
            number = body.text("number", max_length=32)
            body.done()
            provisioning.remove_account_caller_id(session, login, number)

        self._act(req, resp, login, remove, "removed")

    def on_post_secrets(self, req: falcon.Request, resp: falcon.Response, login: str) -> None:
        def change(session, body: Body) -> None:
            _blank_to_none(body, "password", "pin")
            password = body.text("password", required=False, max_length=1024)
            pin = body.text("pin", required=False, max_length=32)
            body.done()
            if password:
                provisioning.set_password(session, login, password)
            if pin:
                provisioning.set_pin(session, self.secret, login, pin)

        self._act(req, resp, login, change, "saved")


@falcon.before(admin_only)
class TariffsPage:
    """/admin/tariffs: list, create, and per tariff (/admin/tariffs/{name}) import and rate lookup."""

    def __init__(self, db: Database, cache: TariffCache) -> None:
        self.db = db
        self.cache = cache

    def _show(self, req, resp, status=falcon.HTTP_200, error="") -> None:
        with self.db.read() as session:
            tariffs = [representations.tariff(tariff, rates) for tariff, rates in provisioning.tariffs(session)]
        html.respond(resp, req, "admin_tariffs.html", status, tariffs=tariffs, error=error, notice=notice(req))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = Body.form(req)
            name = body.text("name", max_length=64)
            currency = body.text("currency", max_length=3)
            description = body.text("description", required=False, default="")
            body.done()
            with self.db.write() as session:
                provisioning.create_tariff(session, name, currency, description)
        except _REFUSED as error:
            self._show(req, resp, _status_of(error), form_error(error))
            return
        raise redirect("/admin/tariffs", "added")

    def _show_one(self, req, resp, name: str, status=falcon.HTTP_200, error="", rates_text="") -> None:
        rate, lookup_error = None, ""
        with self.db.read() as session:
            found = {t.name: (t, n) for t, n in provisioning.tariffs(session)}
            if name not in found:
                raise provisioning.NotFound(f"no tariff {name!r}")
            if req.get_param("number"):
                try:
                    rate = admin.rate_lookup(session, self.cache, name, req, utcnow())
                except _REFUSED as refused:
                    lookup_error = form_error(refused)
        html.respond(
            resp,
            req,
            "admin_tariff.html",
            status,
            tariff=representations.tariff(*found[name]),
            rate=rate,
            number=req.get_param("number", default=""),
            lookup_error=lookup_error,
            rates_text=rates_text,
            error=error,
            notice=notice(req),
        )

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self._show_one(req, resp, name)

    def on_post_import(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        rates_text = ""
        try:
            body = Body.form(req)
            rates_text = body.text("rates", max_length=admin.MAX_RATES_CSV_BYTES)
            body.done()
            with self.db.write() as session:
                provisioning.import_rates(session, name, rates_text.replace("\r\n", "\n"))
        except _REFUSED as error:
            self._show_one(req, resp, name, _status_of(error), form_error(error), rates_text)
            return
        raise redirect(f"/admin/tariffs/{name}", "imported")


@falcon.before(admin_only)
class GatewaysPage:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _show(self, req, resp, status=falcon.HTTP_200, error="") -> None:
        with self.db.read() as session:
            gateways = [representations.gateway(g) for g in provisioning.gateways(session)]
        html.respond(resp, req, "admin_gateways.html", status, gateways=gateways, error=error, notice=notice(req))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = Body.form(req)
            _blank_to_none(body, "trusted_source", "country_code", "kannel_sendsms_url")
            name = body.text("name", max_length=64)
            settings = admin.gateway_settings(body)
            body.done()
            with self.db.write() as session:
                provisioning.add_gateway(session, provisioning.GatewaySpec(name=name, **settings))
        except (*_REFUSED, TypeError) as error:
            self._show(req, resp, _status_of(error), form_error(error))
            return
        raise redirect("/admin/gateways", "added")

    def on_post_toggle(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        try:
            body = Body.form(req)
            enabled = body.boolean("enabled")
            body.done()
            with self.db.write() as session:
                provisioning.update_gateway(session, name, {}, enabled)
        except _REFUSED as error:
            self._show(req, resp, _status_of(error), form_error(error))
            return
        raise redirect("/admin/gateways", "saved")


_FLAGS = ("enabled", "allow_pin", "allow_ani", "known_callers_only", "save_caller_id_on_pin", "announce_balance")


def _checkboxes(body: Body) -> None:
    # An unticked checkbox sends nothing: every flag the form shows is read as true or false.
    for flag in _FLAGS:
        body.fields[flag] = "true" if body.fields.get(flag) else "false"


@falcon.before(admin_only)
class AccessNumbersPage:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _show(self, req, resp, status=falcon.HTTP_200, error="") -> None:
        with self.db.read() as session:
            numbers = [representations.access_number(n) for n in provisioning.access_numbers(session)]
        html.respond(resp, req, "admin_access_numbers.html", status, numbers=numbers, error=error, notice=notice(req))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = Body.form(req)
            number = body.text("number", max_length=15)
            settings = admin.access_number_settings(body)
            body.done()
            with self.db.write() as session:
                provisioning.add_access_number(session, provisioning.AccessNumberSpec(number=number, **settings))
        except _REFUSED as error:
            self._show(req, resp, _status_of(error), form_error(error))
            return
        raise redirect("/admin/access-numbers", "added")

    def on_post_one(self, req: falcon.Request, resp: falcon.Response, number: str) -> None:
        try:
            body = Body.form(req)
            _checkboxes(body)
            settings = admin.access_number_settings(body)
            enabled = body.boolean("enabled")
            body.done()
            with self.db.write() as session:
                provisioning.update_access_number(session, number, settings, enabled)
        except _REFUSED as error:
            self._show(req, resp, _status_of(error), form_error(error))
            return
        raise redirect("/admin/access-numbers", "saved")


@falcon.before(admin_only)
class ListPage:
    """A read-only list: live calls, the SMS log or the ledger, as the API pages them."""

    def __init__(self, db: Database, template: str, fetch) -> None:
        self.db = db
        self.template = template
        self.fetch = fetch

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            listed = self.fetch(session, req)
        query = falcon.to_query_str({k: v for k, v in req.params.items() if k not in ("page", "per_page")})
        html.respond(resp, req, self.template, listed=listed, filters=req.params, query=query)
