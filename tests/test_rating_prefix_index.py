"""Longest-prefix lookup with effective dates (rating/prefix_index.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.prefix_index import PrefixIndex, RateEntry
from rating.pricing import Price

ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)
NEW_YEAR = datetime(2027, 1, 1, tzinfo=UTC)


def entry(prefix: str, per_minute: str, since: datetime = ALWAYS, name: str = "") -> RateEntry:
    return RateEntry(None, prefix, name or prefix, since, Price(Decimal(per_minute)))


INDEX = PrefixIndex(
    [
        entry("44", "0.10", name="United Kingdom"),
        entry("447", "0.18", name="United Kingdom mobile"),
        entry("4477", "0.25", NEW_YEAR, name="UK mobile, premium (from 2027)"),
        entry("1", "0.05", name="US and Canada"),
        entry("1", "0.04", NEW_YEAR, name="US and Canada, 2027 price"),
    ]
)


@pytest.mark.parametrize(
    ("number", "at", "destination"),
    [
        ("442071234567", NEW_YEAR, "United Kingdom"),
        ("447911123456", NEW_YEAR, "United Kingdom mobile"),
        # 4477 starts on new year's day: before it, its numbers fall to the shorter prefix 447.
        ("447700900123", NEW_YEAR - timedelta(microseconds=1), "United Kingdom mobile"),
        ("447700900123", NEW_YEAR, "UK mobile, premium (from 2027)"),
        # A scheduled price change of one prefix.
        ("14155550100", NEW_YEAR - timedelta(seconds=1), "US and Canada"),
        ("14155550100", NEW_YEAR + timedelta(days=300), "US and Canada, 2027 price"),
        # A number shorter than a longer prefix still finds the shorter one.
        ("447", NEW_YEAR, "United Kingdom mobile"),
        ("44", NEW_YEAR, "United Kingdom"),
    ],
)
def test_longest_prefix_in_force_wins(number, at, destination):
    assert INDEX.lookup(number, at).destination == destination


def test_no_rate_for_an_unknown_destination_or_before_any_rate():
    assert INDEX.lookup("33612345678", NEW_YEAR) is None
    assert INDEX.lookup("4", NEW_YEAR) is None
    assert INDEX.lookup("", NEW_YEAR) is None
    only_later = PrefixIndex([entry("33", "0.1", NEW_YEAR)])
    assert only_later.lookup("33612345678", NEW_YEAR - timedelta(days=1)) is None
    assert len(INDEX) == 5


def test_two_rates_of_one_prefix_from_the_same_moment_are_refused():
    with pytest.raises(ValueError, match="prefix 44 has two rates from the same moment"):
        PrefixIndex([entry("44", "0.1"), entry("44", "0.2")])


moments = st.integers(0, 5).map(lambda day: NEW_YEAR + timedelta(days=day))
rate_sets = st.lists(st.tuples(st.text("1234", min_size=1, max_size=4), moments), unique=True, max_size=30)


@given(rate_sets, st.text("1234", min_size=0, max_size=6), moments)
def test_lookup_agrees_with_scanning_every_rate(rates, number, at):
    """The index answers what "longest prefix among the rates in force, latest start" means."""
    entries = [entry(prefix, "0.01", since, name=f"{prefix}@{since.day}") for prefix, since in rates]
    in_force = [e for e in entries if number.startswith(e.prefix) and e.effective_from <= at]
    expected = max(in_force, key=lambda e: (len(e.prefix), e.effective_from), default=None)

    assert PrefixIndex(entries).lookup(number, at) == expected
