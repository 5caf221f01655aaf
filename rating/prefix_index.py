"""Longest-prefix lookup over a tariff's rates, honouring the moment each rate takes effect.

Pure and in memory: built once from a tariff's rates (rating/tariff_cache.py keeps it current),
then each lookup costs one dictionary probe per distinct prefix length, at most the number's length.

The rate for a number at a moment is the one with the longest prefix among the rates in force then;
a rate in force is, for its prefix, the one with the latest `effective_from` not after the moment.
A prefix whose only rates start later does not exist yet, so a shorter prefix answers instead.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rating.pricing import Price

MAX_DIGITS = 15  # an E.164 number has at most 15 digits, and so has a prefix


@dataclass(frozen=True, slots=True)
class RateEntry:
    """One rate of a tariff as the engine uses it: where it applies, from when, and its price."""

    rate_id: int | None
    prefix: str
    destination: str
    effective_from: datetime
    price: Price


class PrefixIndex:
    def __init__(self, entries: Iterable[RateEntry]):
        versions: dict[str, list[RateEntry]] = {}
        for entry in entries:
            versions.setdefault(entry.prefix, []).append(entry)
        # Per prefix: its only rate, or its start times in order and its rates in the same order,
        # for bisection. Most prefixes have one rate, and take the shorter way.
        self._by_prefix: dict[str, RateEntry | tuple[list[datetime], list[RateEntry]]] = {}
        for prefix, found in versions.items():
            if len(prefix) > MAX_DIGITS:
                raise ValueError(f"prefix {prefix} is longer than {MAX_DIGITS} digits")
            found.sort(key=lambda entry: entry.effective_from)
            starts = [entry.effective_from for entry in found]
            if len(set(starts)) != len(starts):
                raise ValueError(f"prefix {prefix} has two rates from the same moment")
            self._by_prefix[prefix] = found[0] if len(found) == 1 else (starts, found)
        lengths = sorted({len(prefix) for prefix in self._by_prefix}, reverse=True)
        # For a number of n digits, the prefix lengths worth probing, longest first.
        self._lengths_for = [[length for length in lengths if length <= size] for size in range(MAX_DIGITS + 1)]
        self.size = sum(len(found) for found in versions.values())
        # What the cheapest call start costs, for `cheapest_start`: computed on first use, valid until
        # the next moment a rate takes effect.
        self._changes = sorted({entry.effective_from for found in versions.values() for entry in found})
        self._cheapest: tuple[datetime, datetime | None, int] | None = None

    def __len__(self) -> int:
        return self.size

    def in_force(self, at: datetime) -> list[RateEntry]:
        """Every prefix's rate in force at `at`."""
        found = []
        for versions in self._by_prefix.values():
            if versions.__class__ is RateEntry:
                if versions.effective_from <= at:
                    found.append(versions)
                continue
            starts, entries = versions
            position = bisect_right(starts, at)
            if position:
                found.append(entries[position - 1])
        return found

    def cheapest_start(self, at: datetime) -> int | None:
        """What the first billed increment (connect fee included) of the cheapest destination that
        is not free costs at `at`, in micro-units; None when the tariff rates nothing then. A
        callback whose destination is not known yet holds this much for it."""
        cached = self._cheapest
        if cached is not None and cached[0] <= at and (cached[1] is None or at < cached[1]):
            return cached[2]
        costs = [entry.price.cost_micro(entry.price.first_billed_seconds) for entry in self.in_force(at)]
        if not costs:
            return None
        paid = [cost for cost in costs if cost > 0]
        cheapest = min(paid) if paid else 0
        position = bisect_right(self._changes, at)
        since = self._changes[position - 1]
        until = self._changes[position] if position < len(self._changes) else None
        self._cheapest = (since, until, cheapest)
        return cheapest

    def lookup(self, number: str, at: datetime) -> RateEntry | None:
        """The rate for `number` (E.164 digits) in force at `at`, or None."""
        if len(number) > MAX_DIGITS:
            return None
        probe = self._by_prefix.get
        for length in self._lengths_for[len(number)]:
            versions = probe(number[:length])
            if versions is None:
                continue
            if versions.__class__ is RateEntry:
                if versions.effective_from <= at:
                    return versions
                continue
            starts, found = versions
            position = bisect_right(starts, at)
            if position:
                return found[position - 1]
        return None
