"""Bencode, the encoding of rtpengine's ng control protocol.

Strings come back as bytes (rtpengine's SDP and tags are byte strings); `decode_text` turns every
byte string of a decoded reply into str for convenience.
"""

from __future__ import annotations

from typing import Any


class BencodeError(ValueError):
    pass


class Incomplete(BencodeError):
    """The buffer ends before the value does: read more and try again."""


def encode(value: Any) -> bytes:
    if isinstance(value, bool):
        raise BencodeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes | bytearray):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(encode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(encode(k) + encode(v) for k, v in items) + b"e"
    raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode_prefix(data: bytes, start: int = 0) -> tuple[Any, int]:
    """Decode one value at data[start:]; returns (value, index after it)."""
    if start >= len(data):
        raise Incomplete("no data")
    lead = data[start : start + 1]
    if lead == b"i":
        end = data.find(b"e", start)
        if end < 0:
            raise Incomplete("integer")
        try:
            return int(data[start + 1 : end]), end + 1
        except ValueError:
            raise BencodeError(f"bad integer at {start}") from None
    if lead in (b"l", b"d"):
        items = []
        index = start + 1
        while True:
            if index >= len(data):
                raise Incomplete("list")
            if data[index : index + 1] == b"e":
                break
            item, index = decode_prefix(data, index)
            items.append(item)
        if lead == b"l":
            return items, index + 1
        if len(items) % 2:
            raise BencodeError(f"dictionary at {start} has a key without a value")
        keys = items[0::2]
        if not all(isinstance(k, bytes) for k in keys):
            raise BencodeError(f"dictionary at {start} has a non-string key")
        return {k.decode(): v for k, v in zip(keys, items[1::2], strict=True)}, index + 1
    if lead.isdigit():
        colon = data.find(b":", start)
        if colon < 0:
            raise Incomplete("string length")
        try:
            length = int(data[start:colon])
        except ValueError:
            raise BencodeError(f"bad string length at {start}") from None
        end = colon + 1 + length
        if end > len(data):
            raise Incomplete("string")
        return bytes(data[colon + 1 : end]), end
    raise BencodeError(f"unexpected byte {lead!r} at {start}")


def decode(data: bytes) -> Any:
    value, end = decode_prefix(data)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} bytes after the value")
    return value


def decode_text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [decode_text(item) for item in value]
    if isinstance(value, dict):
        return {key: decode_text(item) for key, item in value.items()}
    return value
