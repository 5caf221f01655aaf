"""HTML pages for customers, and signing in and out: server-rendered forms, no JavaScript needed.

Each page uses the same functions as the JSON API (portal/customer.py, portal/auth.py); a form that
fails is shown again with the reason, and one that succeeds redirects (POST, then GET).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime

import falcon

from boomerang import provisioning
from boomerang.store.types import utcnow
from portal import customer, html
from portal.auth import Authenticator, SignInRefused, signed_in
from portal.database import Database
from portal.validation import Body
from rating.tariff_cache import TariffCache

LOGIN_CSRF_COOKIE = "boomerang_login_csrf"
NOTICES = {
    "added": "Added.",
    "removed": "Removed.",
    "password": "Your password was changed; your other sessions were signed out.",
    "pin": "Your PIN was changed.",
    "saved": "Saved.",
    "posted": "Posted to the ledger.",
    "imported": "Rates imported.",
}


def notice(req: falcon.Request) -> str | None:
    return NOTICES.get(req.get_param("notice") or "")


def redirect(to: str, done: str | None = None) -> falcon.HTTPSeeOther:
    return falcon.HTTPSeeOther(to + (f"?notice={done}" if done else ""))


def form_error(error: Exception) -> str:
    """The message of a refused form, as the JSON API would give it."""
    if isinstance(error, falcon.HTTPError):
        return error.description or error.title
    return str(error)


def _safe_next(target: str | None) -> str:
    # Only a path of this site: "//evil.example" or "https://..." would send the user elsewhere.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


class Home:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = req.context.principal
        if principal is None:
            raise falcon.HTTPSeeOther("/login")
        raise falcon.HTTPSeeOther("/admin" if principal.is_admin else "/dashboard")


class SignIn:
    """/login: the sign-in form. Its own token travels in a cookie too, so no other site can sign a
    browser into an account of its choosing."""

    csrf_exempt = ("POST",)

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def _form(self, req: falcon.Request, resp: falcon.Response, status: str = falcon.HTTP_200, error: str = "") -> None:
        token = secrets.token_urlsafe(24)
        resp.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            path="/login",
            secure=self.authenticator.secure_cookies,
            http_only=True,
            same_site="Strict",
        )
        html.respond(
            resp,
            req,
            "login.html",
            status,
            login_token=token,
            next=_safe_next(req.get_param("next")),
            error=error,
            login=req.context.get("attempted_login", ""),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._form(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = req.get_media(default_when_empty={}) if req.content_length else {}
        if not isinstance(form, dict):
            form = {}
        sent, cookie = str(form.get("login_token", "")), req.get_cookie_values(LOGIN_CSRF_COOKIE) or [""]
        login, password = str(form.get("login", ""))[:128], str(form.get("password", ""))[:1024]
        req.context.attempted_login = login
        if not sent or not hmac.compare_digest(sent, cookie[0]):
            self._form(req, resp, falcon.HTTP_403, "The form expired: please sign in again.")
            return
        try:
            token, principal = self.authenticator.sign_in(login, password, req.remote_addr or "")
        except SignInRefused as refused:
            self._form(req, resp, refused.status, refused.detail[0].upper() + refused.detail[1:] + ".")
            return
        self.authenticator.set_cookie(resp, token)
        resp.unset_cookie(LOGIN_CSRF_COOKIE, path="/login")
        default = "/admin" if principal.is_admin else "/dashboard"
        target = _safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
        raise falcon.HTTPSeeOther(default if target == "/" else target)


class SignOut:
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    @falcon.before(signed_in)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.context.principal.via == "session":
            self.authenticator.sign_out(req.context.principal)
        self.authenticator.clear_cookie(resp)
        raise falcon.HTTPSeeOther("/login")


@falcon.before(signed_in)
class DashboardPage:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.db.read() as session:
            me = customer.dashboard(session, req.context.principal.account_id, self.clock())
        html.respond(resp, req, "dashboard.html", me=me)


@falcon.before(signed_in)
class CallerIdsPage:
    """/caller-ids: list, add (POST), and /caller-ids/remove (POST)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _show(self, req, resp, status=falcon.HTTP_200, error="", number="") -> None:
        with self.db.read() as session:
            numbers = provisioning.caller_ids(session, req.context.principal.login)
            me = customer.dashboard(session, req.context.principal.account_id, utcnow())
        html.respond(
            resp, req, "caller_ids.html", status, numbers=numbers, me=me, error=error, number=number, notice=notice(req)
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        number = ""
        try:
            body = Body.form(req)
            number = body.text("number", max_length=32)
            body.done()
            with self.db.write() as session:
                provisioning.add_caller_id_within_limit(session, req.context.principal.login, number)
        except (provisioning.ProvisioningError, falcon.HTTPBadRequest) as error:
            status = falcon.HTTP_409 if isinstance(error, provisioning.Conflict) else falcon.HTTP_400
            self._show(req, resp, status, form_error(error), number)
            return
        raise redirect("/caller-ids", "added")

    def on_post_remove(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = Body.form(req)
            number = body.text("number", max_length=32)
            body.done()
            with self.db.write() as session:
                provisioning.remove_account_caller_id(session, req.context.principal.login, number)
        except (provisioning.ProvisioningError, falcon.HTTPBadRequest) as error:
            self._show(req, resp, falcon.HTTP_404, form_error(error))
            return
        raise redirect("/caller-ids", "removed")


@falcon.before(signed_in)
class HistoryPage:
    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            with self.db.read() as session:
                calls = customer.call_page(session, req, req.context.principal.account_id)
            error = ""
        except falcon.HTTPBadRequest as bad:
            calls, error = {"items": [], "total": 0, "next": None, "page": 1}, form_error(bad)
        query = falcon.to_query_str({k: v for k, v in req.params.items() if k not in ("page", "per_page")})
        html.respond(resp, req, "history.html", calls=calls, filters=req.params, query=query, error=error)


@falcon.before(signed_in)
class RatesPage:
    def __init__(self, db: Database, cache: TariffCache) -> None:
        self.db = db
        self.cache = cache

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        number = req.get_param("number", default="")
        rate, error, status = None, "", falcon.HTTP_200
        if number:
            try:
                with self.db.read() as session:
                    rate = customer.rate_for(session, self.cache, req.context.principal.account_id, number, utcnow())
            except provisioning.ProvisioningError as refused:
                error = str(refused)
                status = falcon.HTTP_404 if isinstance(refused, provisioning.NotFound) else falcon.HTTP_400
        html.respond(resp, req, "rates.html", status, number=number, rate=rate, error=error)


@falcon.before(signed_in)
class AccountPage:
    """/account: password and PIN; /account/password and /account/pin take the forms."""

    def __init__(self, db: Database, authenticator: Authenticator, secret: bytes) -> None:
        self.db = db
        self.authenticator = authenticator
        self.secret = secret

    def _show(self, req, resp, status=falcon.HTTP_200, error="") -> None:
        html.respond(resp, req, "account.html", status, error=error, notice=notice(req))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp)

    def on_post_password(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = Body.form(req)
            current = body.text("current_password", max_length=1024)
            new = body.text("new_password", max_length=1024)
            body.done()
            self.authenticator.change_password(req.context.principal, current, new, req.remote_addr or "")
        except SignInRefused as refused:
            self._show(req, resp, refused.status, refused.detail)
            return
        except falcon.HTTPBadRequest as bad:
            self._show(req, resp, falcon.HTTP_400, form_error(bad))
            return
        raise redirect("/account", "password")

    def on_post_pin(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = req.context.principal
        try:
            body = Body.form(req)
            password = body.text("password", max_length=1024)
            pin = body.text("pin", max_length=32)
            body.done()
            self.authenticator.verify_password(principal, password, req.remote_addr or "")
            with self.db.write() as session:
                provisioning.set_pin(session, self.secret, principal.login, pin)
        except SignInRefused as refused:
            self._show(req, resp, refused.status, refused.detail)
            return
        except (provisioning.ProvisioningError, falcon.HTTPBadRequest) as error:
            self._show(req, resp, falcon.HTTP_400, form_error(error))
            return
        raise redirect("/account", "pin")
