"""The Falcon application: resources are added here, one module per area."""

from __future__ import annotations

from pathlib import Path

import falcon

from boomerang.settings import Settings
from portal import auth, customer, health, openapi, pages, problems, sms_ingress
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
    app.add_route("/api/tokens/{token_id:int}", auth.TokenResource(db))
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

    app.add_route("/", pages.Home())
    app.add_static_route("/static", str(Path(__file__).parent / "static"))
    return app
