"""May this call start, and for how long: the pure part of credit control (no I/O).

rating/credit.py gathers the facts from the database (the rate, the free credit, the call's legs
already running) and asks `decide`; the benchmark asks it directly, in process.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from rating.prefix_index import RateEntry
from rating.pricing import MAX_LEG_SECONDS, Leg, Price, max_duration, total_cost_micro


class Reason(enum.StrEnum):
    """Why a call is refused: callers turn each into a prompt or an SMS."""

    NO_RATE = "no_rate"  # the destination has no rate in the account's tariff (or no tariff)
    INSUFFICIENT_CREDIT = "insufficient_credit"  # the first billed increment does not fit the credit
    ACCOUNT_SUSPENDED = "account_suspended"  # the account is suspended or closed
    TOO_MANY_CALLS = "too_many_calls"  # the account already has max_concurrent_calls calls up


@dataclass(frozen=True, slots=True)
class Grant:
    """Credit reserved for one leg: the leg may talk `granted_seconds` from its answer."""

    leg_id: str
    granted_seconds: int
    added_seconds: int  # by the operation that returned this grant; 0: it could not be extended
    amount: Decimal  # reserved in total for the leg: the cost of `granted_seconds`
    expires_at: datetime  # extend before then, or cut the leg at this moment at the latest


class Decision(NamedTuple):
    """The answer to "may this leg start?" (a tuple: immutable, and cheap to build per decision)."""

    allowed: bool
    # The longest the new leg can last, with the call's other legs running along, on the credit
    # available now (free credit plus what this call has reserved); 0 when refused. An upper bound:
    # other calls of the account may use the same credit meanwhile.
    max_seconds: int
    reason: Reason | None = None
    rate: RateEntry | None = None
    grant: Grant | None = None  # set by credit.reserve


class RunningLeg(NamedTuple):
    """A leg of the same call already up: its price, seconds talked, and the amount it holds."""

    leg: Leg
    reserved_micro: int


def refuse(reason: Reason, rate: RateEntry | None = None) -> Decision:
    return Decision(False, 0, reason, rate)


_NO_RATE = refuse(Reason.NO_RATE)


def decide(
    rate: RateEntry | None, free_micro: int, running: Sequence[RunningLeg] = (), cap: int = MAX_LEG_SECONDS
) -> Decision:
    """Allow a new leg at `rate` if free credit pays its first billed increment; say for how long.

    `free_micro` is the account's free credit in micro-units (balance + credit limit - active
    reservations). A leg must get past its grace seconds to be worth placing: one billed second
    brings in the whole first increment, so "fits one more second than the grace" is exactly
    "fits the first increment".
    """
    if rate is None:
        return _NO_RATE
    price = rate.price
    # max_duration((Leg(price),), free_micro, cap), inlined: this runs for every call attempt.
    if free_micro < 0:
        alone = 0
    else:
        longest = price.longest_duration(free_micro)
        alone = cap if longest is None or longest > cap else longest
    if alone <= price.grace_seconds:
        return refuse(Reason.INSUFFICIENT_CREDIT, rate)
    if not running:
        return Decision(True, alone, None, rate)
    legs = [item.leg for item in running]
    legs.append(Leg(price))
    together = max_duration(legs, free_micro + sum(item.reserved_micro for item in running), cap)
    if together <= price.grace_seconds:
        return refuse(Reason.INSUFFICIENT_CREDIT, rate)
    return Decision(True, together, None, rate)


class Talking(NamedTuple):
    """A leg of a call for `common_end`: its price, when it was answered (whole seconds after the
    call's first answer) and the seconds it is granted from its answer."""

    price: Price
    offset: int
    granted: int


def common_end(legs: Sequence[Talking], budget_micro: int, latest: int) -> int | None:
    """The latest moment, in whole seconds after the call's first answer and at most `latest`,
    until which all the call's legs can run together for `budget_micro`; None when not even the
    moment the last of them was answered fits.

    The legs of a call end together: a leg's talk time is this moment less its own offset, so
    each leg is granted up to the same end, however late it was answered. (Extending every leg by
    the same seconds would not: a leg answered later, or half-way through a longer increment,
    would run out first and cut the call while the others still hold credit.)
    """
    start = max(leg.offset for leg in legs)
    timed = [Leg(leg.price, start - leg.offset) for leg in legs]
    if total_cost_micro(timed, 0) > budget_micro:
        return None
    return start + max_duration(timed, budget_micro, cap=max(latest - start, 0))
