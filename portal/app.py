"""The Falcon application: resources are added here, one module per area."""

from __future__ import annotations

from pathlib import Path

import falcon

from boomerang.settings import Settings
from portal import (
    admin,
    admin_pages,
    auth,
    customer,
    health,
    openapi,
    pages,
    problems,
    sms_ingress,
    web_callback_page,
    web_callbacks,
)
from portal.database import Database
from rating.tariff_cache import TariffCache


def create_app(settings: Settings) -> falcon.App:
    db = Database(settings.database_url)
    secret = settings.secret_key()
    authenticator = auth.Authenticator(db, secret, settings.portal_secure_cookies)
    tariffs = TariffCache()
    app = falcon.App(middleware=[auth.Authentication(authenticator)])
    app.req_options.strip_url_path_trailing_slash = True
    problems.install(app)

    app.add_route("/api/health", health.Health(db.reader))
    app.add_route("/api/openapi.json", openapi.OpenApiDocument())
    app.add_route("/sms/kannel", sms_ingress.KannelInbound(db.writer, settings))
    app.add_route("/api/sms/inbound", sms_ingress.WebhookInbound(db.writer, settings))

    app.add_route("/api/session", auth.SessionResource(authenticator))
    app.add_route("/api/tokens", auth.TokensResource(db))
    app.add_route("/api/tokens/{token_id:int(min=1, max=2147483647)}", auth.TokenResource(db))
    app.add_route("/api/me", customer.Dashboard(db))
    app.add_route("/api/me/password", auth.PasswordResource(authenticator))
    app.add_route("/api/me/pin", customer.Pin(db, authenticator, secret))
    app.add_route("/api/me/caller-ids", customer.CallerIds(db))
    app.add_route("/api/me/caller-ids/{number}", customer.CallerId(db))
    app.add_route("/api/me/calls", customer.Calls(db))
    app.add_route("/api/me/calls.csv", customer.CallsCsv(db))
    app.add_route("/api/me/calls/{call_id}", customer.Call(db))
    app.add_route("/api/me/ledger", customer.Ledger(db))
    app.add_route("/api/me/rate", customer.RateLookup(db, tariffs))

    starter = web_callbacks.WebCallbacks(db, tariffs, settings.numbers_blocked_prefixes)
    app.add_route("/api/callbacks", starter)
    app.add_route("/api/callbacks/{callback_id}", web_callbacks.WebCallback(db))
    app.add_route("/api/callbacks/{callback_id}/events", web_callbacks.WebCallbackEvents(db))
    app.add_route("/callback", web_callback_page.WebCallbackForm(db, starter))
    app.add_route("/callback/{callback_id}", web_callback_page.WebCallbackStatus(db))

    app.add_route("/api/admin/accounts", admin.Accounts(db, secret))
    app.add_route("/api/admin/accounts/{login}", admin.AccountResource(db, secret))
    app.add_route("/api/admin/accounts/{login}/ledger", admin.AccountLedger(db))
    app.add_route("/api/admin/accounts/{login}/caller-ids", admin.AccountCallerIds(db))
    app.add_route("/api/admin/accounts/{login}/caller-ids/{number}", admin.AccountCallerId(db))
    app.add_route("/api/admin/accounts/{login}/calls", admin.AccountCalls(db))
    app.add_route("/api/admin/tariffs", admin.Tariffs(db))
    app.add_route("/api/admin/tariffs/{name}", admin.TariffResource(db))
    app.add_route("/api/admin/tariffs/{name}/rates.csv", admin.TariffRatesCsv(db))
    app.add_route("/api/admin/tariffs/{name}/rate", admin.TariffRateLookup(db, tariffs))
    app.add_route("/api/admin/gateways", admin.Gateways(db))
    app.add_route("/api/admin/gateways/{name}", admin.GatewayResource(db))
    app.add_route("/api/admin/access-numbers", admin.AccessNumbers(db))
    app.add_route("/api/admin/access-numbers/{number}", admin.AccessNumberResource(db))
    app.add_route("/api/admin/calls", admin.LiveCalls(db))
    live_call = admin.LiveCall(db)
    app.add_route("/api/admin/calls/{callback_id}", live_call)
    app.add_route("/admin/calls/{callback_id}/hangup", live_call, suffix="hangup")
    app.add_route("/api/admin/sms", admin.SmsLog(db))
    app.add_route("/api/admin/ledger", admin.Ledger(db))

    app.add_route("/", pages.Home())
    app.add_route("/login", pages.SignIn(authenticator))
    app.add_route("/logout", pages.SignOut(authenticator))
    app.add_route("/dashboard", pages.DashboardPage(db))
    caller_ids = pages.CallerIdsPage(db)
    app.add_route("/caller-ids", caller_ids)
    app.add_route("/caller-ids/remove", caller_ids, suffix="remove")
    app.add_route("/history", pages.HistoryPage(db))
    app.add_route("/rates", pages.RatesPage(db, tariffs))
    account = pages.AccountPage(db, authenticator, secret)
    app.add_route("/account", account)
    app.add_route("/account/password", account, suffix="password")
    app.add_route("/account/pin", account, suffix="pin")

    app.add_route("/admin", admin_pages.AdminHome())
    app.add_route("/admin/accounts", admin_pages.AccountsPage(db, secret))
    account_page = admin_pages.AccountPage(db, secret)
    app.add_route("/admin/accounts/{login}", account_page)
    for action in ("settings", "status", "ledger", "caller_ids", "secrets"):
        app.add_route(f"/admin/accounts/{{login}}/{action.replace('_', '-')}", account_page, suffix=action)
    app.add_route("/admin/accounts/{login}/caller-ids/remove", account_page, suffix="remove_caller_id")
    tariffs_page = admin_pages.TariffsPage(db, tariffs)
    app.add_route("/admin/tariffs", tariffs_page)
    app.add_route("/admin/tariffs/{name}", tariffs_page, suffix="one")
    app.add_route("/admin/tariffs/{name}/import", tariffs_page, suffix="import")
    gateways_page = admin_pages.GatewaysPage(db)
    app.add_route("/admin/gateways", gateways_page)
    app.add_route("/admin/gateways/{name}/toggle", gateways_page, suffix="toggle")
    numbers_page = admin_pages.AccessNumbersPage(db)
    app.add_route("/admin/access-numbers", numbers_page)
    app.add_route("/admin/access-numbers/{number}", numbers_page, suffix="one")
    app.add_route("/admin/calls", admin_pages.ListPage(db, "admin_calls.html", admin.live_calls))
    app.add_route("/admin/sms", admin_pages.ListPage(db, "admin_sms.html", admin.sms_page))
    app.add_route("/admin/ledger", admin_pages.ListPage(db, "admin_ledger.html", admin.ledger_page))
    app.add_static_route("/static", str(Path(__file__).parent / "static"))
    return app
