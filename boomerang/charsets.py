"""Text from the bytes carriers send, whatever they are: decoded by the charset they name, and what
cannot be decoded replaced, never refused (every SMS is stored and answered).

Carriers send UTF-8, Latin-1 (often without saying so) and UCS-2, which is UTF-16 big-endian
without a byte-order mark (SMPP's data_coding 8) unless a BOM says otherwise.
"""

from __future__ import annotations

import codecs

_UCS2 = {"ucs-2", "ucs2", "iso-10646-ucs-2", "utf-16", "utf16", "utf-16be", "unicode"}


def decode_text(data: bytes, charset: str | None = None) -> str:
    name = (charset or "").strip().lower()
    if name in _UCS2:
        if data[:2] in (codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE):
            return data.decode("utf-16", "replace")
        return data.decode("utf-16-be", "replace")
    if name:
        try:
            return data.decode(codecs.lookup(name).name, "replace")
        except LookupError:
            pass  # a charset nobody knows: guess, as for none
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte is a Latin-1 character


def charset_of(content_type: str) -> str | None:
    """The charset parameter of a Content-Type value, if any."""
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"')
    return None
