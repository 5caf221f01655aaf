"""Telephone numbers: parsing what people type into E.164 digits (no "+")."""

from __future__ import annotations

E164_MAX_DIGITS = 15
E164_MIN_DIGITS = 6
_SEPARATORS = str.maketrans("", "", " -.()/\t")


class InvalidNumber(ValueError):
    """Text that is not a telephone number we can dial or store."""


def to_e164(text: str) -> str:
    """'+44 7700 900123', '0044 7700900123' or '447700900123' -> '447700900123'.

    National numbers (leading single 0) are refused here: reading them needs the account's country.
    """
    raw = text.strip().translate(_SEPARATORS)
    if raw.startswith("+"):
        digits = raw[1:]
    elif raw.startswith("00"):
        digits = raw[2:]
    else:
        digits = raw
    if not (digits.isascii() and digits.isdigit()):  # str.isdigit() also takes '²' and '٤'
        raise InvalidNumber(f"{text!r} is not a telephone number")
    if digits.startswith("0"):
        raise InvalidNumber(f"{text!r} is not in international format (+<country code><number>)")
    if not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
        raise InvalidNumber(f"{text!r} must have {E164_MIN_DIGITS} to {E164_MAX_DIGITS} digits")
    return digits


def service_number(text: str) -> str:
    """A number of our own (access or SMS number): plain digits, short codes allowed."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or not 3 <= len(digits) <= E164_MAX_DIGITS:
        raise InvalidNumber(f"{text!r} must be 3 to {E164_MAX_DIGITS} digits")
    return digits


def from_carrier(user: str, country_code: str | None = None, national_prefix: str = "0") -> str:
    """A number as a carrier presents it (URI user part) -> E.164 digits.

    Carriers send '+447700900123', '00447700900123', '447700900123', or a national '07700900123'
    (read with the gateway's country code). Visual separators are ignored.
    """
    raw = user.strip().translate(_SEPARATORS)
    if country_code and national_prefix and raw.startswith(national_prefix) and not raw.startswith("00"):
        raw = country_code + raw[len(national_prefix) :]
    return to_e164(raw)


def for_gateway(
    e164: str,
    number_format: str = "e164",
    country_code: str | None = None,
    national_prefix: str = "0",
    strip_digits: int = 0,
    add_prefix: str = "",
) -> str:
    """The dialled number as a gateway expects it: its format, then its strip and prefix rules.

    number_format: "e164" (447700900123), "plus_e164" (+447700900123) or "national" (07700900123
    for numbers of the gateway's country, 00 + E.164 for the others).
    """
    if number_format == "plus_e164":
        dialled = "+" + e164
    elif number_format == "national" and country_code and e164.startswith(country_code):
        dialled = national_prefix + e164[len(country_code) :]
    elif number_format == "national":
        dialled = "00" + e164
    else:
        dialled = e164
    return add_prefix + dialled[strip_digits:]


def dialled_to_e164(digits: str, country_code: str | None = None, national_prefix: str = "0") -> str:
    """A destination keyed on a phone's keypad -> E.164.

    International forms: 00 or 011 (North America) or * (for "+") before the country code, or the
    country code straight away. National forms, read with the account's country: the national prefix
    (0 in most countries: 07700900123 in the UK), or for country code 1 the ten-digit number.
    """
    digits = digits.strip()
    for international in ("00", "011", "*"):
        if digits.startswith(international):
            return to_e164(digits[len(international) :])
    if country_code and national_prefix and digits.startswith(national_prefix):
        return to_e164(country_code + digits[len(national_prefix) :])
    if country_code == "1" and len(digits) == 10:
        return to_e164("1" + digits)
    return to_e164(digits)


class PrefixList(tuple[str, ...]):
    """E.164 prefixes, written and read as "1900,44909" (a setting's text form)."""

    @classmethod
    def parse(cls, text: str) -> PrefixList:
        prefixes = [part.strip().lstrip("+") for part in text.split(",") if part.strip()]
        for prefix in prefixes:
            if not prefix.isascii() or not prefix.isdigit() or len(prefix) > 15:
                raise ValueError(f"{prefix!r} is not a number prefix (up to 15 digits)")
        return cls(prefixes)

    def __str__(self) -> str:
        return ",".join(self)

    def covers(self, number: str) -> bool:
        """Whether an E.164 number (digits) starts with one of these prefixes."""
        return any(number.startswith(prefix) for prefix in self)
