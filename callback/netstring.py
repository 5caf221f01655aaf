"""Netstrings ("5:hello,"), the framing of Kamailio's evapi channel."""

from __future__ import annotations

MAX_LENGTH = 1 << 20


class NetstringError(ValueError):
    pass


def encode(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class Decoder:
    """Feed it bytes as they arrive from the socket; it yields each complete payload."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        payloads = []
        while True:
            colon = self._buffer.find(b":")
            if colon < 0:
                if len(self._buffer) > 8 or not self._buffer.isdigit() and self._buffer:
                    raise NetstringError(f"bad netstring length {bytes(self._buffer[:16])!r}")
                return payloads
            digits = bytes(self._buffer[:colon])
            if not digits.isdigit() or int(digits) > MAX_LENGTH:
                raise NetstringError(f"bad netstring length {digits[:16]!r}")
            end = colon + 1 + int(digits)
            if len(self._buffer) < end + 1:
                return payloads
            if self._buffer[end : end + 1] != b",":
                raise NetstringError("netstring not terminated by ','")
            payloads.append(bytes(self._buffer[colon + 1 : end]))
            del self._buffer[: end + 1]
