"""The Falcon application: resources are added here, one module per area."""

from __future__ import annotations

import falcon

from boomerang.settings import Settings
from boomerang.store import make_engine, session_factory
from portal import health, openapi, pages, sms_ingress


def create_app(settings: Settings) -> falcon.App:
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    app = falcon.App()
    app.add_route("/", pages.Home())
    app.add_route("/api/health", health.Health(sessions))
    app.add_route("/api/openapi.json", openapi.OpenApiDocument())
    app.add_route("/sms/kannel", sms_ingress.KannelInbound(sessions, settings))
    app.add_route("/api/sms/inbound", sms_ingress.WebhookInbound(sessions, settings))
    return app
