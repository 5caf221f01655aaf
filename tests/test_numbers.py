"""Reading the numbers people type and carriers send."""

from __future__ import annotations

import pytest

from boomerang.numbers import InvalidNumber, dialled_to_e164, for_gateway, from_carrier, to_e164


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("+44 7700 900123", "447700900123"),
        ("0044-7700-900123", "447700900123"),
        ("447700900123", "447700900123"),
        ("+1 (202) 555-0143", "12025550143"),
    ],
)
def test_international_forms(text, e164):
    assert to_e164(text) == e164


@pytest.mark.parametrize("text", ["07700900123", "anonymous", "+", "+44", "1234567890123456", "44٧٧00900123", ""])
def test_what_is_not_an_international_number(text):
    with pytest.raises(InvalidNumber):
        to_e164(text)


@pytest.mark.parametrize(
    ("user", "country", "e164"),
    [
        ("+447700900123", None, "447700900123"),
        ("00447700900123", "44", "447700900123"),
        ("447700900123", "44", "447700900123"),
        ("07700900123", "44", "447700900123"),
        ("02025550143", "1", "12025550143"),
    ],
)
def test_carrier_presentations(user, country, e164):
    assert from_carrier(user, country) == e164


def test_a_national_number_without_the_gateways_country_is_refused():
    with pytest.raises(InvalidNumber):
        from_carrier("07700900123")


@pytest.mark.parametrize(
    ("options", "dialled"),
    [
        ({}, "447700900123"),
        ({"number_format": "plus_e164"}, "+447700900123"),
        ({"number_format": "national", "country_code": "44"}, "07700900123"),
        ({"number_format": "national", "country_code": "1"}, "00447700900123"),
        ({"strip_digits": 2, "add_prefix": "9#"}, "9#7700900123"),
        ({"number_format": "national", "country_code": "44", "add_prefix": "1010"}, "101007700900123"),
    ],
)
def test_numbers_as_each_gateway_expects_them(options, dialled):
    assert for_gateway("447700900123", **options) == dialled


@pytest.mark.parametrize(
    ("keyed", "country", "e164"),
    [
        ("00447700900123", None, "447700900123"),
        ("011447700900123", "1", "447700900123"),
        ("*447700900123", None, "447700900123"),
        ("447700900123", None, "447700900123"),
        ("07700900123", "44", "447700900123"),
        ("2025550143", "1", "12025550143"),
        ("12025550143", "1", "12025550143"),
    ],
)
def test_destinations_keyed_on_a_phone(keyed, country, e164):
    assert dialled_to_e164(keyed, country) == e164


@pytest.mark.parametrize(("keyed", "country"), [("07700900123", None), ("123", None), ("00", "44"), ("#", None)])
def test_destinations_that_cannot_be_called(keyed, country):
    with pytest.raises(InvalidNumber):
        dialled_to_e164(keyed, country)
