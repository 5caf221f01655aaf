"""The web callback page: two numbers and a call button; each leg's status follows live.

The page works without JavaScript (the form posts, and the call's page refreshes itself until the
call is over); with it, the script (static/web_callback.js) starts the call through the API and
follows its Server-Sent Events.
"""

from __future__ import annotations

import uuid

import falcon

from boomerang.store.models import Account, CallbackKind
from boomerang.store.types import utcnow
from callback import requests
from portal import html
from portal.auth import signed_in
from portal.database import Database
from portal.web_callbacks import WebCallbacks, owned_callback, view


@falcon.before(signed_in)
class WebCallbackForm:
    """GET /callback: the form; POST /callback (form fields a, b): start it, then its page."""

    def __init__(self, db: Database, starter: WebCallbacks) -> None:
        self.db = db
        self.starter = starter

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        html.respond(resp, req, "web_callback.html", a="", b="", error="", callback=None)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = req.get_media(default_when_empty={})
        a, b = str(form.get("a", "")), str(form.get("b", ""))
        try:
            with self.db.write() as session:
                account = session.get(Account, req.context.principal.account_id)
                numbers = [self.starter.read_number(text, account.country_code) for text in (a, b)]
                queued = requests.connect_two(session, self.starter.tariffs, account, *numbers,
                                              kind=CallbackKind.WEB, request_ref=f"web:{uuid.uuid4()}",
                                              now=utcnow())  # fmt: skip
                callback_id = queued.id
        except requests.RequestRefused as refused:
            return html.respond(resp, req, "web_callback.html", falcon.HTTP_409, a=a, b=b, error=str(refused),
                                callback=None)  # fmt: skip
        except falcon.HTTPError as invalid:
            return html.respond(resp, req, "web_callback.html", falcon.HTTP_422, a=a, b=b,
                                error=invalid.description or invalid.title, callback=None)  # fmt: skip
        raise falcon.HTTPSeeOther(f"/callback/{callback_id}")


@falcon.before(signed_in)
class WebCallbackStatus:
    """GET /callback/{id}: one call's legs and their statuses."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, callback_id: str) -> None:
        with self.db.read() as session:
            callback = view(session, owned_callback(session, req.context.principal.account_id, callback_id))
        html.respond(resp, req, "web_callback.html", a=callback["a"], b=callback["b"], error="", callback=callback)
