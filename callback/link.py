"""A TCP connection to a local engine (Kamailio evapi, rtpengine ng) that reconnects by itself."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from boomerang.settings import HostPort

log = logging.getLogger(__name__)

BACKOFF_START = 0.2
BACKOFF_MAX = 5.0


class LinkDown(ConnectionError):
    """The link is not connected; the request was not sent."""


class Link:
    """Subclasses turn received bytes into messages (`received`) and reset their parser on connect."""

    name = "link"

    def __init__(self, address: HostPort) -> None:
        self.address = address
        self.connected = asyncio.Event()
        self.connect_listeners: list[Callable[[], None]] = []  # told each time it (re)connects
        self._writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = BACKOFF_START
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
            except OSError as exc:
                log.debug("%s: cannot connect to %s: %s", self.name, self.address, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._writer = writer
            self.on_connect()
            self.connected.set()
            log.info("%s: connected to %s", self.name, self.address)
            for listener in self.connect_listeners:
                listener()
            try:
                await self._read(reader, sock)
            except OSError as exc:  # reset by an engine that died: reconnect, as for a close
                log.warning("%s: connection to %s failed: %s", self.name, self.address, exc)
            finally:
                self.connected.clear()
                self._writer = None
                writer.close()
                self.on_disconnect()
            log.warning("%s: connection to %s lost; reconnecting", self.name, self.address)

    async def _read(self, reader: asyncio.StreamReader, sock) -> None:
        while data := await reader.read(65536):
            # Acknowledge at once: with delayed ACKs the peer's Nagle holds its next small event back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            try:
                self.received(data)
            except ValueError as exc:
                log.error("%s: unreadable data, dropping the connection: %s", self.name, exc)
                return

    def write(self, data: bytes) -> None:
        if self._writer is None:
            raise LinkDown(f"{self.name} is not connected to {self.address}")
        self._writer.write(data)

    def on_connect(self) -> None:
        """Reset per-connection state (parsers)."""

    def on_disconnect(self) -> None:
        """Fail whatever waited for an answer on the lost connection."""

    def received(self, data: bytes) -> None:
        raise NotImplementedError
