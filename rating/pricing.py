"""What a call costs, and how long a call may last for a given amount: pure arithmetic, no I/O.

The billing model (docs/rating.md explains it for operators):

- A leg's duration is whole seconds from answer to end, the fraction of the last second not billed.
- A leg lasting at most `grace_seconds` is free (with no grace, only a leg under one second is).
- Otherwise the billed seconds are the duration raised to `minimum_duration`, then to the end of
  the increment it falls in: the first increment is `initial_increment` seconds, every later one
  `subsequent_increment` seconds (60/60, 30/6, 1/1...).
- The cost is `connect_fee + price_per_minute * billed / 60`, computed exactly and rounded once,
  to `rounding_digits` decimals by `rounding` (up, half_up or down).

Everything is integer arithmetic on micro-units (10^-6 of the currency), never float: a cost is
`ceil`, `floor` or half-up of the exact rational `(60 * fee + price * billed) / 60`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from boomerang.store.types import MONEY_DECIMALS, from_micro_units, to_micro_units

UP = "up"
HALF_UP = "half_up"
DOWN = "down"
ROUNDINGS = (UP, HALF_UP, DOWN)

# The longest a leg may be granted: a bound for rates that cost nothing once connected.
MAX_LEG_SECONDS = 4 * 3600


@dataclass(frozen=True, slots=True)
class Price:
    """The terms of one rate. `rounding` takes the RoundingMode values ("up", "half_up", "down")."""

    per_minute: Decimal
    connect_fee: Decimal = Decimal(0)
    initial_increment: int = 60
    subsequent_increment: int = 60
    minimum_duration: int = 0
    grace_seconds: int = 0
    rounding: str = UP
    rounding_digits: int = 4
    # Derived integers, so that costing a call never builds a Decimal.
    _per_minute: int = field(init=False, repr=False, compare=False)
    _connect_fee: int = field(init=False, repr=False, compare=False)
    _step: int = field(init=False, repr=False, compare=False)  # micro-units per rounding step
    _divisor: int = field(init=False, repr=False, compare=False)  # 60 * _step
    # For longest_duration: how far above a whole number of steps (times 60) an exact cost may be
    # and still round down to it, less the connect fee (times 60).
    _slack: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.initial_increment < 1 or self.subsequent_increment < 1:
            raise ValueError("increments are at least one second")
        if self.minimum_duration < 0 or self.grace_seconds < 0:
            raise ValueError("minimum duration and grace seconds must not be negative")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {self.rounding!r}")
        if not 0 <= self.rounding_digits <= MONEY_DECIMALS:
            raise ValueError(f"rounding digits are 0 to {MONEY_DECIMALS}")
        per_minute, connect_fee = to_micro_units(self.per_minute), to_micro_units(self.connect_fee)
        if per_minute < 0 or connect_fee < 0:
            raise ValueError("prices must not be negative")
        object.__setattr__(self, "_per_minute", per_minute)
        object.__setattr__(self, "_connect_fee", connect_fee)
        step = 10 ** (MONEY_DECIMALS - self.rounding_digits)
        divisor = 60 * step
        # up: nothing above; down: anything below the next step; half_up: below the half step
        # (divisor is even, so the half is whole).
        above = {UP: 0, DOWN: divisor - 1, HALF_UP: divisor // 2 - 1}[self.rounding]
        object.__setattr__(self, "_step", step)
        object.__setattr__(self, "_divisor", divisor)
        object.__setattr__(self, "_slack", above - 60 * connect_fee)

    # --- a leg's cost -------------------------------------------------------------------------

    def billed_seconds(self, duration: int) -> int:
        """The seconds charged for a leg that lasted `duration` whole seconds."""
        if duration <= self.grace_seconds:
            return 0
        seconds = duration if duration > self.minimum_duration else self.minimum_duration
        initial = self.initial_increment
        if seconds <= initial:
            return initial
        subsequent = self.subsequent_increment
        return initial + -(-(seconds - initial) // subsequent) * subsequent

    @property
    def first_billed_seconds(self) -> int:
        """The seconds billed for the shortest leg that is not free: its first increment (and minimum)."""
        return self.billed_seconds(self.grace_seconds + 1)

    def cost_micro(self, duration: int) -> int:
        """The cost of a leg of `duration` seconds, in micro-units."""
        billed = self.billed_seconds(duration)
        if billed == 0:
            return 0
        return self._rounded(60 * self._connect_fee + self._per_minute * billed)

    def cost(self, duration: int) -> Decimal:
        return from_micro_units(self.cost_micro(duration))

    def _rounded(self, sixtieths: int) -> int:
        """`sixtieths / 60` micro-units rounded to a whole number of steps, as micro-units."""
        step = self._step
        divisor = self._divisor
        if self.rounding == UP:
            return -(-sixtieths // divisor) * step
        if self.rounding == DOWN:
            return sixtieths // divisor * step
        return (2 * sixtieths + divisor) // (2 * divisor) * step

    # --- the inverse: how long a budget lasts -------------------------------------------------

    def longest_duration(self, budget_micro: int) -> int | None:
        """The largest duration whose cost is at most `budget_micro`; None if there is no largest
        (a free rate), -1 if not even a free second fits (a negative budget)."""
        if budget_micro < 0:
            return -1
        # The largest exact value of 60 * cost that still rounds to at most the budget.
        most = budget_micro // self._step * self._divisor + self._slack
        if most < 0:
            return self.grace_seconds  # not even the connect fee fits: only the free seconds do
        if self._per_minute == 0:
            return None
        billed = most // self._per_minute
        initial = self.initial_increment
        if billed < initial:
            return self.grace_seconds
        # The end of the last increment that fits; every duration up to it bills at most `billed`.
        last = initial + (billed - initial) // self.subsequent_increment * self.subsequent_increment
        if self.minimum_duration > last:
            return self.grace_seconds
        return last if last > self.grace_seconds else self.grace_seconds


class Leg(NamedTuple):
    """A leg for `max_duration`: its price, and the seconds already behind it (used or granted).

    A tuple rather than a frozen dataclass: as immutable, and several times cheaper to build, which
    counts at one per decision.
    """

    price: Price
    elapsed: int = 0


def total_cost_micro(legs: Sequence[Leg], seconds: int) -> int:
    """The cost of all legs once each has run `seconds` more."""
    return sum(leg.price.cost_micro(leg.elapsed + seconds) for leg in legs)


def max_duration(legs: Sequence[Leg], available: Decimal | int, cap: int = MAX_LEG_SECONDS) -> int:
    """The most seconds, up to `cap`, that all `legs` can run on together for `available` money.

    `available` is a Decimal amount, or an int of micro-units. The result t satisfies
    `total_cost(t) <= available`, and `t == cap` or `total_cost(t + 1) > available`: one more
    second, hence one more increment of some leg, would not fit. Returns 0 when even the legs'
    cost so far does not fit. Single legs are solved in closed form; several legs by bounding the
    answer between two closed-form solutions and bisecting the few seconds between them.
    """
    budget = available if isinstance(available, int) else to_micro_units(available)
    if len(legs) == 1:
        leg = legs[0]
        if leg.price.cost_micro(leg.elapsed) > budget:
            return 0
        longest = leg.price.longest_duration(budget)
        return cap if longest is None else min(longest - leg.elapsed, cap)
    if not legs:
        return cap
    spent = [leg.price.cost_micro(leg.elapsed) for leg in legs]
    if sum(spent) > budget:
        return 0
    spare = budget - sum(spent)
    # Upper bound: a leg cannot run longer than the whole spare money lets it alone.
    # Lower bound: split the spare money in proportion to the legs' prices; each leg lasts at least
    # as long as its share does, so all of them together last at least the shortest of those.
    weights = [leg.price._per_minute for leg in legs]
    total_weight = sum(weights)
    high, low = cap, cap
    for leg, own, weight in zip(legs, spent, weights, strict=True):
        alone = leg.price.longest_duration(own + spare)
        if alone is not None:
            high = min(high, alone - leg.elapsed)
        share = spare * weight // total_weight if total_weight else spare // len(legs)
        shared = leg.price.longest_duration(own + share)
        if shared is not None:
            low = min(low, shared - leg.elapsed)
    # Invariant: low fits; high + 1 does not (or high is the cap).
    while low < high:
        middle = (low + high + 1) // 2
        if total_cost_micro(legs, middle) <= budget:
            low = middle
        else:
            high = middle - 1
    return low
