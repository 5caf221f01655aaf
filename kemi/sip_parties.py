"""Who is calling: the caller's number as E.164, from P-Asserted-Identity or else From."""

import re

from boomerang.numbers import InvalidNumber, from_carrier
from kemi import sip_text

_URI_USER = re.compile(r"(?:sips?|tel):\+?([^@;>\s]+)")


def _user_of(header_value):
    match = _URI_USER.search(header_value or "")
    if not match:
        return None
    user = match.group(1)
    return ("+" + user) if "+" + user in header_value else user


def caller_number(gateway):
    """The caller's E.164 number, or None when it is withheld or unreadable."""
    for value in (sip_text.header("P-Asserted-Identity"), sip_text.text("fu")):
        user = _user_of(value)
        if not user:
            continue
        try:
            return from_carrier(user, gateway.country_code, gateway.national_prefix)
        except InvalidNumber:
            continue
    return None
