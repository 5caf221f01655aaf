"""rtpengine's ng control protocol over TCP: commands with replies, and notifications (DTMF).

Frames are "<cookie> <bencoded dictionary>", back to back on the stream; a reply repeats the
command's cookie. Anything else that arrives (rtpengine's {"notify": ...} messages) goes to the
notification handler.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
from collections.abc import Callable
from typing import Any

from callback import bencode
from callback.link import Link

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0


class NgError(RuntimeError):
    """rtpengine answered a command with result "error"."""


class NgClient(Link):
    name = "rtpengine"

    def __init__(self, address, on_notify: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(address)
        self.on_notify = on_notify or (lambda message: None)
        self._cookies = itertools.count(1)
        # rtpengine answers a cookie it has seen recently from its cache (that is how it handles
        # retransmissions): cookies must never repeat, across clients and restarts alike.
        self._prefix = f"{os.getpid()}_{secrets.token_hex(4)}_"
        self._pending: dict[bytes, asyncio.Future] = {}
        self._buffer = bytearray()

    async def request(self, command: str, **params: Any) -> dict[str, Any]:
        """Send one command and return rtpengine's reply (strings decoded); raise NgError on "error"."""
        cookie = f"{self._prefix}{next(self._cookies)}".encode()
        future = asyncio.get_running_loop().create_future()
        self._pending[cookie] = future
        try:
            self.write(cookie + b" " + bencode.encode({"command": command, **params}))
            reply = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self._pending.pop(cookie, None)
        reply = bencode.decode_text(reply)
        if reply.get("result") == "error":
            raise NgError(f"rtpengine refused {command}: {reply.get('error-reason', 'no reason given')}")
        return reply

    def on_connect(self) -> None:
        self._buffer.clear()

    def on_disconnect(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("rtpengine connection lost"))

    def received(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer:
            space = self._buffer.find(b" ")
            if space < 0:
                if len(self._buffer) > 256:
                    raise ValueError("no cookie in the first 256 bytes")
                return
            try:
                message, end = bencode.decode_prefix(bytes(self._buffer), space + 1)
            except bencode.Incomplete:
                return
            cookie = bytes(self._buffer[:space])
            del self._buffer[:end]
            self._dispatch(cookie, message)

    def _dispatch(self, cookie: bytes, message: Any) -> None:
        future = self._pending.get(cookie)
        if future is not None and not future.done():
            future.set_result(message)
        elif isinstance(message, dict) and "notify" in message:
            self.on_notify(bencode.decode_text(message))
        else:
            log.warning("rtpengine: unexpected message with cookie %r", cookie[:40])
