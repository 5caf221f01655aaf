"""SMS command words: what each text asks for, and the reply to texts that ask for nothing valid."""

from __future__ import annotations

from decimal import Decimal

import pytest

from callback.sms_commands import (
    HELP_TEXT,
    Command,
    CommandError,
    Verb,
    balance_reply,
    is_pin_attempt,
    parse,
    rate_reply,
    redacted,
)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Command(Verb.CALL_ME)),
        ("   \r\n", Command(Verb.CALL_ME)),
        ("CB", Command(Verb.CALL_ME)),
        ("cb", Command(Verb.CALL_ME)),
        ("Call", Command(Verb.CALL_ME)),
        ("CB +12025550143", Command(Verb.CALL_ME_TO, numbers=("+12025550143",))),
        ("c 0044-20-7946-0123", Command(Verb.CALL_ME_TO, numbers=("0044-20-7946-0123",))),
        ("CB +447700900123  +12025550143\n", Command(Verb.CONNECT, numbers=("+447700900123", "+12025550143"))),
        ("REG 4321", Command(Verb.REGISTER, pin="4321")),
        ("register 4321", Command(Verb.REGISTER, pin="4321")),
        ("BAL", Command(Verb.BALANCE)),
        ("balance", Command(Verb.BALANCE)),
        ("RATE 0012025550143", Command(Verb.RATE, numbers=("0012025550143",))),
        ("price +44 ", Command(Verb.RATE, numbers=("+44",))),
        ("HELP", Command(Verb.HELP)),
        ("?", Command(Verb.HELP)),
    ],
)
def test_commands_and_their_aliases_in_any_case(text, command):
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("HELLO", 'Unknown command "HELLO". ' + HELP_TEXT),
        ("\x00\x1b[31mX", 'Unknown command "[31mX". ' + HELP_TEXT),
        ("CB 1 2 3", "Too many numbers: CB, CB num or CB A B."),
        ("REG", "Send REG followed by your PIN, e.g. REG 1234."),
        ("REG 12 34", "Send REG followed by your PIN, e.g. REG 1234."),
        ("REG abcd", "A PIN is digits only. Send REG followed by your PIN, e.g. REG 1234."),
        ("REG 1234567890123", "A PIN is digits only. Send REG followed by your PIN, e.g. REG 1234."),
        ("RATE", "Send RATE followed by one number, e.g. RATE +447700900123."),
        ("BAL now", "BAL takes nothing after it. " + HELP_TEXT),
        ("HELP me", "HELP takes nothing after it. " + HELP_TEXT),
    ],
)
def test_texts_that_are_no_command_get_a_reply_saying_why(text, reply):
    with pytest.raises(CommandError) as refusal:
        parse(text)
    assert str(refusal.value) == reply


def test_the_help_text_fits_one_sms():
    assert len(HELP_TEXT) <= 160 and HELP_TEXT.isascii()


def test_replies_with_money():
    assert balance_reply(Decimal("10"), Decimal("10"), "USD") == "Your balance is 10.00 USD."
    assert balance_reply(Decimal("10"), Decimal("9.9"), "EUR") == (
        "Your balance is 10.00 EUR; available for calls: 9.90 EUR."
    )
    assert rate_reply("12025550143", "US", Decimal("0.0500"), Decimal(0), "USD") == (
        "Calls to US (+12025550143) cost 0.05 USD per minute."
    )
    assert rate_reply("4930", "Berlin", Decimal("0.0125"), Decimal(0), "EUR") == (
        "Calls to Berlin (+4930) cost 0.0125 EUR per minute."
    )
    assert rate_reply("447700900123", "UK mobile", Decimal("0.12"), Decimal("0.10"), "GBP") == (
        "Calls to UK mobile (+447700900123) cost 0.12 GBP per minute, plus 0.10 GBP per call."
    )


def test_a_pin_is_never_kept_in_the_stored_text():
    assert redacted("REG 4321") == "REG <PIN hidden>" and is_pin_attempt(redacted("reg 4321"))
    assert redacted("register 12 34") == "register <hidden>" and not is_pin_attempt(redacted("register 12 34"))
    assert redacted("BAL") == "BAL" and not is_pin_attempt("BAL")
    assert redacted("RATE 4321") == "RATE 4321"
