"""The SMS desk: every text received on the service number gets exactly one reply, sent back the
way the text came (SIP MESSAGE through Kamailio, or the gateway's Kannel sendsms URL).

Texts are stored by whoever received them (the SIP edge, the portal's HTTP ingress) before they are
acknowledged; the desk picks them up when told (`sms_received`) and, in case a notice was missed,
every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
import urllib.request
from collections.abc import Callable

from boomerang.store.models import SmsEgress
from boomerang.store.types import utcnow
from callback.sms_store import Reply, SmsStore

log = logging.getLogger("callback.sms")

POLL_SECONDS = 1.0  # texts stored over HTTP have no notice: they wait at most this long
KANNEL_TIMEOUT_SECONDS = 10.0


class SmsDesk:
    def __init__(self, store: SmsStore, kamailio, on_callback_requested: Callable[[], None]) -> None:
        self.store = store
        self.kamailio = kamailio
        self.on_callback_requested = on_callback_requested
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A text was stored: handle it now rather than at the next poll."""
        self._wake.set()

    def on_result(self, message: dict) -> None:
        """Kamailio's word on a reply it sent: {"type": "sms_result", "sms_id", "code"}."""
        code = int(message.get("code") or 500)
        asyncio.ensure_future(asyncio.to_thread(self.store.sent, int(message["sms_id"]), 200 <= code < 300, utcnow()))

    async def run(self) -> None:
        while True:
            self._wake.clear()
            for sms_id in await asyncio.to_thread(self.store.waiting):
                await self._handle(sms_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _handle(self, sms_id: int) -> None:
        try:
            reply = await asyncio.to_thread(self.store.handle, sms_id, utcnow())
        except Exception:
            log.exception("SMS %s could not be handled", sms_id)
            return
        if reply is None:
            return  # another controller had it
        if reply.callback_requested:
            self.on_callback_requested()
        if reply.egress is SmsEgress.KANNEL and reply.kannel_sendsms_url:
            delivered = await asyncio.to_thread(_send_by_kannel, reply)
            await asyncio.to_thread(self.store.sent, reply.id, delivered, utcnow())
            return
        self.kamailio.send(
            {"type": "send_sms", "sms_id": reply.id, "target": reply.to, "sender": reply.sender, "text": reply.text,
             "gateways": [reply.gateway] if reply.gateway else []}
        )  # fmt: skip


def _send_by_kannel(reply: Reply) -> bool:
    """Kannel's sendsms interface: GET with to, from and text added to the configured URL (which
    carries the username and password)."""
    query = urllib.parse.urlencode({"to": "+" + reply.to, "from": reply.sender, "text": reply.text})
    separator = "&" if "?" in reply.kannel_sendsms_url else "?"
    try:
        with urllib.request.urlopen(reply.kannel_sendsms_url + separator + query, timeout=KANNEL_TIMEOUT_SECONDS) as r:
            return 200 <= r.status < 300
    except OSError as exc:
        log.warning("SMS %s not accepted by Kannel: %r", reply.id, exc)
        return False
