"""Texts arriving over HTTP: Kannel's smsbox `get-url` (GET /sms/kannel) and a JSON webhook (POST
/api/sms/inbound). As for SIP, only a gateway we trust may deliver, by its name and the address the
request comes from. A text is stored before it is acknowledged; the call controller answers it.

Kannel sends the body of our response back as a reply unless its sms-service sets
`max-messages = 0`: we answer with an empty body, and send the real reply through the gateway's
sendsms URL (docs/sms.md).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote_to_bytes

import falcon
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from boomerang import sms_inbox
from boomerang.charsets import decode_text
from boomerang.numbers import InvalidNumber, from_carrier
from boomerang.settings import Settings
from boomerang.store import transaction
from boomerang.store.models import Gateway, SmsChannel


class _Inbox:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    def deliver(self, req: falcon.Request, channel: SmsChannel, fields: dict) -> tuple[int, bool]:
        """Store one delivered text; raise an HTTP error a gateway operator can act on."""
        missing = [name for name in ("gateway", "sender", "receiver", "id") if not str(fields.get(name) or "").strip()]
        if missing:
            raise falcon.HTTPBadRequest(title="Missing fields", description="required: " + ", ".join(missing))
        text = fields.get("text")
        if not isinstance(text, str):
            raise falcon.HTTPBadRequest(title="Missing text", description="text must be a string (it may be empty)")
        receiver = str(fields["receiver"]).strip().lstrip("+")
        if receiver != self.settings.numbers_sms_number:
            raise falcon.HTTPNotFound(title="Unknown number", description=f"{receiver!r} is not our SMS number")
        with transaction(self.sessions) as session:
            gateway = session.execute(
                select(Gateway).where(Gateway.name == str(fields["gateway"]), Gateway.enabled.is_(True))
            ).scalar_one_or_none()
            if gateway is None or not _trusted(gateway, req.remote_addr):
                raise falcon.HTTPForbidden(title="Not a trusted gateway", description="unknown gateway or address")
            try:
                sender = from_carrier(str(fields["sender"]), gateway.country_code, gateway.national_prefix)
            except InvalidNumber as exc:
                raise falcon.HTTPBadRequest(title="Invalid sender", description=str(exc)) from None
            return sms_inbox.receive(session, channel, gateway.id, str(fields["id"])[:128], sender, receiver, text)


def _trusted(gateway: Gateway, address: str) -> bool:
    if not gateway.trusted_source:
        return False
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(gateway.trusted_source)
    except ValueError:
        return False


# Kannel's %c: how the SMSC coded the text. 7-bit texts reach us converted to the charset %C names;
# 8-bit ones are bytes in it (Latin-1 when it names none); UCS-2 is UTF-16 big-endian.
_KANNEL_CODINGS = {"0": None, "1": None, "2": "ucs-2"}


class KannelInbound(_Inbox):
    """GET /sms/kannel?gateway=NAME&sender=%p&receiver=%P&text=%b&coding=%c&charset=%C&id=%I
    (Kannel's escape codes: %b the text's bytes as the SMSC sent them, %c their coding, %C their
    charset). A text given with %a instead, in no stated charset, is read as UTF-8, else Latin-1."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        fields = {name: req.get_param(name, default="") for name in ("gateway", "sender", "receiver", "id")}
        fields["text"] = _kannel_text(req.query_string, req.get_param("coding"), req.get_param("charset"))
        self.deliver(req, SmsChannel.KANNEL, fields)
        resp.status = falcon.HTTP_202
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = ""  # nothing for Kannel to send back: the reply goes out through sendsms


def _kannel_text(query_string: str, coding: str | None, charset: str | None) -> str:
    """The text's bytes, read from the query string as they were escaped (whatever charset they
    are in), decoded by their coding and charset; what cannot be decoded is replaced."""
    raw = b""
    for pair in query_string.split("&"):
        name, _, value = pair.partition("=")
        if name == "text":
            raw = unquote_to_bytes(value.replace("+", " "))
            break
    named = _KANNEL_CODINGS.get((coding or "").strip())
    if named is None and (coding or "").strip() == "1" and not charset:
        named = "latin-1"  # 8-bit data in no named charset
    return decode_text(raw, named or charset)


class WebhookInbound(_Inbox):
    """POST /api/sms/inbound {"gateway", "sender", "receiver", "text", "id"}."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        fields = req.get_media(default_when_empty=None)
        if not isinstance(fields, dict):
            raise falcon.HTTPBadRequest(title="Invalid JSON", description="expected a JSON object")
        sms_id, new = self.deliver(req, SmsChannel.WEBHOOK, fields)
        resp.status = falcon.HTTP_202
        resp.media = {"id": sms_id, "duplicate": not new}
