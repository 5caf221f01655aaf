"""What a call costs and how long a budget lasts (rating/pricing.py): examples and properties."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.pricing import MAX_LEG_SECONDS, Leg, Price, max_duration, total_cost_micro


def price(per_minute: str, *, fee: str = "0", increments: tuple[int, int] = (60, 60), **terms) -> Price:
    initial, subsequent = increments
    return Price(Decimal(per_minute), Decimal(fee), initial, subsequent, **terms)


# --- billed seconds and cost ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "duration", "billed", "cost"),
    [
        # 60/60: every started minute is billed.
        (price("0.10"), 1, 60, "0.1"),
        (price("0.10"), 60, 60, "0.1"),
        (price("0.10"), 61, 120, "0.2"),
        # 30/6: a first half minute, then blocks of 6 seconds.
        (price("0.05", increments=(30, 6)), 1, 30, "0.025"),
        (price("0.05", increments=(30, 6)), 30, 30, "0.025"),
        (price("0.05", increments=(30, 6)), 31, 36, "0.03"),
        (price("0.05", increments=(30, 6)), 37, 42, "0.035"),
        # 1/1 per second, rounded at 6 digits three ways: exact cost 0.00144025.
        (price("0.012345", increments=(1, 1), rounding_digits=6), 7, 7, "0.001441"),
        (price("0.012345", increments=(1, 1), rounding_digits=6, rounding="half_up"), 7, 7, "0.00144"),
        (price("0.012345", increments=(1, 1), rounding_digits=6, rounding="down"), 7, 7, "0.00144"),
        # A connect fee is added before the one rounding: 0.05 + 0.125 = 0.175 at 2 digits.
        (price("0.25", fee="0.05", increments=(30, 6), rounding_digits=2), 10, 30, "0.18"),
        (price("0.25", fee="0.05", increments=(30, 6), rounding_digits=2, rounding="half_up"), 10, 30, "0.18"),
        (price("0.25", fee="0.05", increments=(30, 6), rounding_digits=2, rounding="down"), 10, 30, "0.17"),
        # A minimum duration is billed at least, then raised to its increment.
        (price("0.06", increments=(30, 6), minimum_duration=60), 10, 60, "0.06"),
        (price("0.06", increments=(30, 6), minimum_duration=50), 10, 54, "0.054"),
        # Grace: calls up to 5 s are free, connect fee included; the 6th second bills from zero.
        (price("0.06", fee="0.01", increments=(30, 6), grace_seconds=5), 5, 0, "0"),
        (price("0.06", fee="0.01", increments=(30, 6), grace_seconds=5), 6, 30, "0.04"),
        # Without grace only a leg under one second (0 whole seconds) is free.
        (price("0.10", fee="0.02"), 0, 0, "0"),
        # A 6-digit price at 4 digits rounds up to the next 0.0001.
        (price("0.123456", increments=(1, 1)), 1, 1, "0.0021"),
    ],
)
def test_billed_seconds_and_cost(terms, duration, billed, cost):
    assert terms.billed_seconds(duration) == billed
    assert terms.cost(duration) == Decimal(cost)
    assert isinstance(terms.cost(duration), Decimal)


def test_prices_are_exact_decimals_never_floats():
    with pytest.raises(TypeError):
        Price(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 6 decimals"):
        Price(Decimal("0.0000001"))
    with pytest.raises(ValueError, match="increments"):
        Price(Decimal("0.1"), initial_increment=0)
    with pytest.raises(ValueError, match="rounding"):
        Price(Decimal("0.1"), rounding="bankers")


# --- max duration: examples ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "available", "seconds"),
    [
        (price("0.10"), "0.35", 180),  # 3 minutes cost 0.30; a 4th would make 0.40
        (price("0.10"), "0.40", 240),
        (price("0.05", increments=(30, 6)), "0.10", 120),
        (price("0.05", increments=(30, 6)), "0.024", 0),  # the first 30 s cost 0.025
        (price("0.10", fee="0.05"), "0.20", 60),  # 0.05 + 0.10; a second minute would make 0.25
        (price("0.10", fee="0.05"), "0.14", 0),  # the connect fee and the first minute do not fit
        (price("0.10", grace_seconds=10), "0", 10),  # only the free seconds
        (price("0.06", increments=(30, 6), minimum_duration=60), "0.059", 0),
        (price("0.06", increments=(30, 6), minimum_duration=60), "0.065", 60),
        (price("0"), "0", MAX_LEG_SECONDS),  # free destinations are bounded by the cap
        (price("0.10"), "-1", 0),
        # half_up at an exact half step: 1 s of 0.003/min is 0.00005, which rounds up to 0.0001.
        (price("0.003", increments=(1, 1), rounding="half_up"), "0.000099", 0),
        (price("0.003", increments=(1, 1), rounding="half_up"), "0.0001", 2),  # 3 s: 0.00015 -> 0.0002
        (price("0.003", increments=(1, 1), rounding="down"), "0.000099", 1),  # 2 s: 0.0001 exactly
    ],
)
def test_max_duration_of_one_leg(terms, available, seconds):
    assert max_duration([Leg(terms)], Decimal(available)) == seconds


def test_max_duration_of_a_leg_already_running():
    uk = price("0.10")
    # 150 s talked (billed 180 so far, 0.30): with 0.50 in all, the call may reach 300 s.
    assert max_duration([Leg(uk, elapsed=150)], Decimal("0.50")) == 150
    # What it already used does not fit: cut now.
    assert max_duration([Leg(uk, elapsed=150)], Decimal("0.29")) == 0


def test_max_duration_of_a_callback_counts_both_legs():
    """Leg A (to the customer, 30 s in) and leg B (new) run together; one more second of both
    would start A's next minute and go over."""
    leg_a = Leg(price("0.02"), elapsed=30)
    leg_b = Leg(price("0.10"))

    seconds = max_duration([leg_a, leg_b], Decimal("0.36"))

    assert seconds == 150
    assert total_cost_micro([leg_a, leg_b], 150) == 360_000  # A billed 180 s (0.06), B 180 s (0.30)
    assert total_cost_micro([leg_a, leg_b], 151) == 380_000  # A enters its 4th minute
    assert max_duration([leg_b], Decimal("0.36")) == 180  # B alone would have lasted longer


def test_max_duration_respects_the_cap_and_takes_micro_units():
    assert max_duration([Leg(price("0.01"))], Decimal(100), cap=600) == 600
    assert max_duration([Leg(price("0.10"))], 350_000) == 180
    assert max_duration([], Decimal(1), cap=77) == 77


# --- properties ----------------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=3_000_000).map(lambda micro: Decimal(micro).scaleb(-6))
prices = st.builds(
    Price,
    per_minute=amounts,
    connect_fee=st.one_of(st.just(Decimal(0)), st.integers(0, 200_000).map(lambda m: Decimal(m).scaleb(-6))),
    initial_increment=st.one_of(st.sampled_from([1, 6, 30, 60]), st.integers(1, 120)),
    subsequent_increment=st.one_of(st.sampled_from([1, 6, 30, 60]), st.integers(1, 120)),
    minimum_duration=st.one_of(st.just(0), st.integers(0, 180)),
    grace_seconds=st.one_of(st.just(0), st.integers(0, 30)),
    rounding=st.sampled_from(["up", "half_up", "down"]),
    rounding_digits=st.integers(0, 6),
)


@given(prices, st.integers(0, 20_000), st.integers(0, 20_000))
def test_cost_never_decreases_as_duration_grows(terms, first, second):
    shorter, longer = sorted((first, second))
    assert terms.billed_seconds(shorter) <= terms.billed_seconds(longer)
    assert terms.cost(shorter) <= terms.cost(longer)


@given(prices, st.integers(0, 20_000))
def test_each_cost_is_rounded_once_by_its_rule(terms, duration):
    """The cost is the exact price of the billed seconds, rounded once to the rate's digits."""
    billed = terms.billed_seconds(duration)
    cost = terms.cost(duration)
    step = Fraction(1, 10**terms.rounding_digits)
    if billed == 0:
        assert cost == 0
        return
    assert billed >= max(duration, terms.minimum_duration)
    exact = Fraction(terms.connect_fee) + Fraction(terms.per_minute) * billed / 60
    assert Fraction(cost) % step == 0
    if terms.rounding == "up":
        assert 0 <= Fraction(cost) - exact < step
    elif terms.rounding == "down":
        assert 0 <= exact - Fraction(cost) < step
    else:
        assert abs(Fraction(cost) - exact) <= step / 2


legs = st.lists(st.builds(Leg, prices, st.integers(0, 600)), min_size=1, max_size=3)


@settings(max_examples=400)
@given(legs, st.integers(-100_000, 8_000_000), st.integers(1, 20_000))
def test_max_duration_fits_and_one_more_second_would_not(running, budget, cap):
    """The maximum duration's cost fits the budget; one more second (so one more increment of
    some leg) would not, unless the cap was reached; and nothing fits if the past does not."""
    seconds = max_duration(running, budget, cap)

    assert 0 <= seconds <= cap
    if total_cost_micro(running, 0) > budget:
        assert seconds == 0
        return
    assert total_cost_micro(running, seconds) <= budget
    assert seconds == cap or total_cost_micro(running, seconds + 1) > budget


@given(prices, st.integers(0, 8_000_000))
def test_a_new_leg_is_cut_at_the_end_of_a_paid_increment(terms, budget):
    """No second that was paid for is lost: past the grace, the maximum ends an increment."""
    seconds = max_duration([Leg(terms)], budget)
    if terms.grace_seconds < seconds < MAX_LEG_SECONDS:
        assert terms.billed_seconds(seconds) == seconds
