"""What a SIP message says, as text, whatever its bytes: Kamailio hands app_python3 its strings as
UTF-8, and a byte that is not raises in the routing script. Read through a hex transformation,
then decoded here (boomerang/charsets.py), nothing a carrier sends makes a route fail.
"""

import KSR

from boomerang.charsets import charset_of, decode_text


def raw(pv):
    """The bytes of a pseudo-variable, named without its $: "rb", "rU", "fu", "hdr(P-Asserted-Identity)"."""
    hexa = KSR.pv.get("$(" + pv + "{s.encode.hexa})")
    return bytes.fromhex(hexa) if hexa else b""


def text(pv):
    """A pseudo-variable as text; bytes that are not UTF-8 are taken as Latin-1."""
    return decode_text(raw(pv))


def header(name):
    """A header's first value as text; "" when the message has none (asking for it would log an error)."""
    if KSR.hdr.is_present(name) < 0:
        return ""
    return text("hdr(" + name + ")")


def body(content_type):
    """The message body as text, decoded by the charset its Content-Type (the value) names."""
    return decode_text(raw("rb"), charset_of(content_type))
