"""The controller's side of the evapi channel to Kamailio: JSON messages in netstrings."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from callback import netstring
from callback.link import Link

log = logging.getLogger(__name__)

PING_TIMEOUT = 2.0


class KamailioChannel(Link):
    name = "kamailio"

    def __init__(self, address, on_message: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(address)
        self.on_message = on_message or (lambda message: None)
        self._decoder = netstring.Decoder()
        self._ping_ids = itertools.count(1)
        self._pings: dict[int, asyncio.Future] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.write(netstring.encode(json.dumps(message, separators=(",", ":")).encode()))

    async def ping(self) -> float:
        """Round trip through Kamailio's evapi dispatcher, in seconds."""
        ping_id = next(self._ping_ids)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pings[ping_id] = future
        started = loop.time()
        try:
            self.send({"type": "ping", "id": ping_id})
            await asyncio.wait_for(future, PING_TIMEOUT)
        finally:
            self._pings.pop(ping_id, None)
        return loop.time() - started

    def on_connect(self) -> None:
        self._decoder = netstring.Decoder()

    def on_disconnect(self) -> None:
        for future in self._pings.values():
            if not future.done():
                future.set_exception(ConnectionError("Kamailio connection lost"))

    def received(self, data: bytes) -> None:
        for payload in self._decoder.feed(data):
            try:
                message = json.loads(payload)
            except ValueError:
                log.error("kamailio: unreadable message %r", payload[:200])
                continue
            if message.get("type") == "pong":
                future = self._pings.get(message.get("ping"))
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            self.on_message(message)
