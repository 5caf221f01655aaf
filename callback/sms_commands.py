"""SMS commands: what a text to the service number asks for, and the words of the replies.

Pure: no database, no network. `parse` turns a text into a Command or raises CommandError, whose
message is the reply the sender gets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


class Verb(enum.StrEnum):
    CALL_ME = "call_me"  # CB: call me back, then the callback IVR
    CALL_ME_TO = "call_me_to"  # CB <number>: call me back, connected straight to <number>
    CONNECT = "connect"  # CB <A> <B>: connect two numbers
    REGISTER = "register"  # REG <PIN>: this phone becomes an authorized caller ID of the PIN's account
    BALANCE = "balance"  # BAL
    RATE = "rate"  # RATE <number>: price per minute
    HELP = "help"


# The words each command is known by (case does not matter), the first being its name.
NAMES: dict[str, tuple[str, ...]] = {
    "CB": ("CB", "C", "CALL", "CALLBACK"),
    "REG": ("REG", "R", "REGISTER"),
    "BAL": ("BAL", "B", "BALANCE"),
    "RATE": ("RATE", "P", "PRICE"),
    "HELP": ("HELP", "H", "?", "INFO"),
}
_BY_ALIAS = {alias: name for name, aliases in NAMES.items() for alias in aliases}

HELP_TEXT = (
    "CB: call me back. CB num: call me, then num. CB A B: connect A and B. BAL: balance. "
    "RATE num: price per minute. REG pin: register this phone. HELP: this list."
)
MAX_PIN_LENGTH = 12


@dataclass(frozen=True)
class Command:
    verb: Verb
    numbers: tuple[str, ...] = ()  # as typed: read later with the account's country
    pin: str = ""


class CommandError(ValueError):
    """A text that is no command; the message is the reply."""


def parse(text: str) -> Command:
    words = text.split()
    if not words:  # an empty text asks for a callback, as the shortest possible SMS
        return Command(Verb.CALL_ME)
    name = _BY_ALIAS.get(words[0].upper())
    arguments = words[1:]
    if name is None:
        raise CommandError(f"Unknown command {_shown(words[0])}. {HELP_TEXT}")
    if name == "CB":
        if len(arguments) > 2:
            raise CommandError("Too many numbers: CB, CB num or CB A B.")
        verb = (Verb.CALL_ME, Verb.CALL_ME_TO, Verb.CONNECT)[len(arguments)]
        return Command(verb, numbers=tuple(arguments))
    if name == "REG":
        if len(arguments) != 1:
            raise CommandError("Send REG followed by your PIN, e.g. REG 1234.")
        pin = arguments[0]
        if not (pin.isascii() and pin.isdigit() and len(pin) <= MAX_PIN_LENGTH):
            raise CommandError("A PIN is digits only. Send REG followed by your PIN, e.g. REG 1234.")
        return Command(Verb.REGISTER, pin=pin)
    if name == "RATE":
        if len(arguments) != 1:
            raise CommandError("Send RATE followed by one number, e.g. RATE +447700900123.")
        return Command(Verb.RATE, numbers=(arguments[0],))
    if arguments:
        raise CommandError(f"{name} takes nothing after it. {HELP_TEXT}")
    return Command(Verb.BALANCE if name == "BAL" else Verb.HELP)


# A registration's PIN is not kept: the stored text says only that one was sent.
PIN_HIDDEN = "<PIN hidden>"


def redacted(text: str) -> str:
    """The text as it may be stored and shown: a REG text without its PIN."""
    words = text.split()
    if not words or _BY_ALIAS.get(words[0].upper()) != "REG":
        return text
    try:
        parse(text)
    except CommandError:
        return f"{words[0]} <hidden>"  # malformed, but it may hold a PIN all the same
    return f"{words[0]} {PIN_HIDDEN}"


def is_pin_attempt(stored_text: str) -> bool:
    """Whether a stored text was a well-formed REG <PIN> (what PIN guessing is counted by)."""
    return stored_text.endswith(PIN_HIDDEN)


def _shown(word: str) -> str:
    """A sender's word quoted back safely: short, printable."""
    cleaned = "".join(character for character in word if character.isprintable())[:20]
    return f'"{cleaned}"'


# --- replies -----------------------------------------------------------------------------------


def money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(Decimal('0.01'))} {currency}"


def balance_reply(balance: Decimal, available: Decimal, currency: str) -> str:
    if available == balance:
        return f"Your balance is {money(balance, currency)}."
    return f"Your balance is {money(balance, currency)}; available for calls: {money(available, currency)}."


def price(amount: Decimal, currency: str) -> str:
    """A tariff price: at least cents, and every significant decimal beyond (0.0125 stays so)."""
    exact = amount.normalize()
    shown = exact if exact.as_tuple().exponent < -2 else amount.quantize(Decimal("0.01"))
    return f"{shown:f} {currency}"


def rate_reply(number: str, destination: str, price_per_minute: Decimal, connect_fee: Decimal, currency: str) -> str:
    per_minute = price(price_per_minute, currency)
    fee = f", plus {price(connect_fee, currency)} per call" if connect_fee else ""
    return f"Calls to {destination} (+{number}) cost {per_minute} per minute{fee}."


NOT_REGISTERED = "This phone is not registered. Send REG followed by your PIN to register it."
REGISTERED = "This phone is registered: calls and messages from it use your account. Send HELP for commands."
ALREADY_REGISTERED = "This phone is already registered to your account."
REGISTERED_ELSEWHERE = "This phone is registered to another account. Ask your provider to move it."
WRONG_PIN = "That PIN is not valid."
PIN_LOCKED = "Too many wrong PINs from this phone. Try again in an hour."
TOO_MANY = "Too many messages from this phone. Try again later."
ACCOUNT_UNAVAILABLE = "Your account cannot make calls. Please contact your provider."
CALLING_YOU = "We are calling you back now."
CALLING_YOU_TO = "We are calling you back now, then +{number}."
CONNECTING = "Calling +{a} now, then connecting +{b}."
NO_RATE = "Calls to +{number} are not available."
INVALID_NUMBER = "{shown} is not a telephone number. Use the international form, e.g. +447700900123."
BLOCKED = "Calls to +{number} are not allowed."
