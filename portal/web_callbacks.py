"""Web callbacks ("connect two") over the JSON API: start one, read it, cancel it, and follow each
leg's status live as Server-Sent Events (which replay what happened before the browser connected).

Every resource works on the signed-in account only (`req.context.principal`): a callback of another
account is "not found", whatever the method.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import falcon
from sqlalchemy import select
from sqlalchemy.orm import Session

from boomerang.numbers import InvalidNumber, PrefixList, dialled_to_e164
from boomerang.store.models import Account, CallbackKind, CallbackSession, CallLeg, Cdr, LegEvent
from boomerang.store.types import utcnow
from callback import requests
from portal.auth import signed_in
from portal.database import Database
from portal.representations import optional_money
from rating.tariff_cache import TariffCache

STREAM_POLL_SECONDS = 0.1  # how often a live stream looks for new statuses
STREAM_MAX_SECONDS = 4 * 3600  # a stream ends at the latest when a call could not last longer
_SEPARATORS = str.maketrans("", "", " -.()/")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def owned_callback(session: Session, account_id: int, session_id: str) -> CallbackSession:
    found = session.execute(
        select(CallbackSession).where(
            CallbackSession.id == session_id,
            CallbackSession.account_id == account_id,
            CallbackSession.kind == CallbackKind.WEB,
        )
    ).scalar_one_or_none()
    if found is None:
        raise falcon.HTTPNotFound(title="No such callback", description=f"no web callback {session_id!r}")
    return found


def view(session: Session, callback: CallbackSession) -> dict:
    """A callback as the API shows it: its state, and per leg its status, times, who hung up, cost."""
    legs = session.execute(
        select(CallLeg).where(CallLeg.session_id == callback.id).order_by(CallLeg.created_at)
    ).scalars()
    costs = {c.leg_id: c for c in session.execute(select(Cdr).where(Cdr.session_id == callback.id)).scalars()}
    shown = []
    for leg in legs:
        cdr = costs.get(leg.id)
        shown.append(
            {
                "leg": leg.role.value,
                "number": "+" + leg.number,
                "status": leg.status.value,
                "sip_code": leg.sip_code,
                "answered_at": _iso(leg.answered_at),
                "ended_at": _iso(leg.ended_at),
                "hangup_by": leg.hangup_by,
                "duration_seconds": cdr.duration_seconds if cdr else None,
                "cost": optional_money(cdr.cost) if cdr else None,
                "currency": cdr.currency if cdr else None,
            }
        )
    return {
        "id": callback.id,
        "a": "+" + callback.caller_number,
        "b": "+" + (callback.destination_number or ""),
        "state": callback.state,
        "requested_at": _iso(callback.requested_at),
        "ended_at": _iso(callback.ended_at),
        "end_reason": callback.end_reason,
        "legs": shown,
        "total_cost": optional_money(sum((Decimal(c.cost) for c in costs.values()), Decimal(0))) if costs else None,
    }


def events_after(session: Session, session_id: str, after: int) -> list[dict]:
    rows = session.execute(
        select(LegEvent, CallLeg.role, CallLeg.number)
        .join(CallLeg, LegEvent.leg_id == CallLeg.id)
        .where(CallLeg.session_id == session_id, LegEvent.id > after)
        .order_by(LegEvent.id)
    ).all()
    return [
        {"id": event.id, "leg": role.value, "number": "+" + number, "status": event.status.value,
         "sip_code": event.sip_code, "detail": event.detail, "at": _iso(event.at)}
        for event, role, number in rows
    ]  # fmt: skip


@falcon.before(signed_in)
class WebCallbacks:
    """POST /api/callbacks {"a": number, "b": number}: call A, then B, and bridge them."""

    def __init__(self, db: Database, tariffs: TariffCache, blocked: PrefixList) -> None:
        self.db = db
        self.tariffs = tariffs
        self.blocked = blocked

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        account_id = req.context.principal.account_id
        body = req.get_media(default_when_empty=None)
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("a", "b")):
            raise falcon.HTTPBadRequest(title="Two numbers needed", description='send {"a": "+44...", "b": "+1..."}')
        with self.db.write() as session:
            account = session.get(Account, account_id)
            a, b = (self.read_number(body[name], account.country_code) for name in ("a", "b"))
            try:
                queued = requests.connect_two(session, self.tariffs, account, a, b, kind=CallbackKind.WEB,
                                              request_ref=f"web:{uuid.uuid4()}", now=utcnow())  # fmt: skip
            except requests.RequestRefused as refused:
                raise falcon.HTTPConflict(title="Callback refused", description=str(refused),
                                          code=refused.refusal.value) from None  # fmt: skip
            resp.status = falcon.HTTP_201
            resp.location = f"/api/callbacks/{queued.id}"
            resp.media = view(session, queued)

    def read_number(self, text: str, country_code: str | None) -> str:
        """A number as the user typed it, in E.164; 422 when it is none, or may not be called."""
        try:
            number = dialled_to_e164(text.translate(_SEPARATORS), country_code)
        except InvalidNumber as exc:
            raise falcon.HTTPUnprocessableEntity(title="Invalid number", description=str(exc)) from None
        if self.blocked.covers(number):
            raise falcon.HTTPUnprocessableEntity(
                title="Blocked number", description=f"calls to +{number} are not allowed"
            )
        return number


@falcon.before(signed_in)
class WebCallback:
    """GET /api/callbacks/{id}: where it stands; DELETE: stop it (hangs up whatever is up)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, callback_id: str) -> None:
        with self.db.read() as session:
            resp.media = view(session, owned_callback(session, req.context.principal.account_id, callback_id))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, callback_id: str) -> None:
        account_id = req.context.principal.account_id
        with self.db.write() as session:
            owned_callback(session, account_id, callback_id)
            if not requests.cancel(session, account_id, callback_id, utcnow()):
                raise falcon.HTTPConflict(title="Already over", description="this callback has ended")
        resp.status = falcon.HTTP_202
        resp.media = {"id": callback_id, "cancelling": True}


@falcon.before(signed_in)
class WebCallbackEvents:
    """GET /api/callbacks/{id}/events: text/event-stream of the legs' statuses, from the first (or
    after Last-Event-ID), then live; an `end` event with the costs closes it. `max_seconds` ends the
    stream sooner (a client reconnects with Last-Event-ID and loses nothing)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def on_get(self, req: falcon.Request, resp: falcon.Response, callback_id: str) -> None:
        with self.db.read() as session:
            owned_callback(session, req.context.principal.account_id, callback_id)
        after = req.get_header("Last-Event-ID") or req.get_param("after") or "0"
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")  # a proxy in front must not hold the events back
        limit = req.get_param_as_int("max_seconds", min_value=1, max_value=STREAM_MAX_SECONDS) or STREAM_MAX_SECONDS
        resp.stream = self._stream(callback_id, int(after) if after.isdigit() else 0, limit)

    def _stream(self, callback_id: str, after: int, limit: int) -> Iterator[bytes]:
        deadline = time.monotonic() + limit
        yield b"retry: 1000\n\n"
        while time.monotonic() < deadline:
            with self.db.read() as session:
                # The session first: once it has ended, every status of its legs is written.
                callback = session.get(CallbackSession, callback_id)
                final = view(session, callback) if callback.ended_at is not None else None
                events = events_after(session, callback_id, after)
            for event in events:
                after = event["id"]
                yield f"id: {after}\nevent: leg\ndata: {json.dumps(event)}\n\n".encode()
            if final is not None:
                yield f"event: end\ndata: {json.dumps(final)}\n\n".encode()
                return
            time.sleep(STREAM_POLL_SECONDS)
