"""Tariffs as prefix indexes, loaded from the database and kept current in each process.

An index is a read cache, not shared state: each process (Kamailio worker, call controller, portal
worker) builds its own. Every change to a tariff's rates bumps `tariffs.version` in the same
transaction (`bump_version`), and a cached index is checked against that version at most every
`check_interval` seconds, so an import takes effect everywhere within that time, without a restart.
Rates scheduled with a later `effective_from` need no reload: the index already holds them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from boomerang.store.models import Rate, Tariff
from rating.prefix_index import PrefixIndex, RateEntry
from rating.pricing import Price

DEFAULT_CHECK_INTERVAL = 5.0  # seconds between version checks of a cached tariff


def price_of(row) -> Price:
    """The Price of a Rate row, or of anything with the same columns (a Reservation)."""
    return Price(
        per_minute=row.price_per_minute,
        connect_fee=row.connect_fee,
        initial_increment=row.initial_increment,
        subsequent_increment=row.subsequent_increment,
        minimum_duration=row.minimum_duration,
        grace_seconds=row.grace_seconds,
        rounding=str(row.rounding_mode),
        rounding_digits=row.rounding_digits,
    )


_RATE_COLUMNS = (
    Rate.id,
    Rate.prefix,
    Rate.destination,
    Rate.effective_from,
    Rate.price_per_minute,
    Rate.connect_fee,
    Rate.initial_increment,
    Rate.subsequent_increment,
    Rate.minimum_duration,
    Rate.grace_seconds,
    Rate.rounding_mode,
    Rate.rounding_digits,
)


def load_index(session: Session, tariff_id: int) -> PrefixIndex:
    """A tariff's rates, every effective date included, as a prefix index."""
    rows = session.execute(select(*_RATE_COLUMNS).where(Rate.tariff_id == tariff_id))
    # Many rates share their terms: build each distinct Price once.
    prices: dict[tuple, Price] = {}
    entries = []
    for row in rows:
        terms = tuple(row[4:])
        price = prices.get(terms)
        if price is None:
            price = prices[terms] = price_of(row)
        entries.append(RateEntry(row.id, row.prefix, row.destination, row.effective_from, price))
    return PrefixIndex(entries)


def tariff_version(session: Session, tariff_id: int) -> int | None:
    return session.execute(select(Tariff.version).where(Tariff.id == tariff_id)).scalar_one_or_none()


def bump_version(session: Session, tariff_id: int) -> None:
    """Mark the tariff's rates as changed; call it in the transaction that changes them."""
    session.execute(update(Tariff).where(Tariff.id == tariff_id).values(version=Tariff.version + 1))


@dataclass
class _Cached:
    version: int
    index: PrefixIndex
    checked_at: float


class TariffCache:
    """Prefix indexes by tariff id, reloaded when their tariff's version changes.

    `get` takes the caller's session so the checks run on the caller's connection and transaction.
    Safe to share between threads: a reload is done by one thread while the others keep using the
    index they had.
    """

    def __init__(self, check_interval: float = DEFAULT_CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.check_interval = check_interval
        self._clock = clock
        self._cached: dict[int, _Cached] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times an index was built, for tests and metrics

    def get(self, session: Session, tariff_id: int) -> PrefixIndex:
        now = self._clock()
        cached = self._cached.get(tariff_id)
        if cached is not None and now - cached.checked_at < self.check_interval:
            return cached.index
        with self._lock:
            cached = self._cached.get(tariff_id)
            if cached is not None and now - cached.checked_at < self.check_interval:
                return cached.index  # another thread checked it meanwhile
            # Read the version before the rates: if an import commits in between, the index holds
            # the newer rates under the older version and is merely reloaded once more next time.
            version = tariff_version(session, tariff_id)
            if version is None:
                self._cached.pop(tariff_id, None)
                raise LookupError(f"no tariff with id {tariff_id}")
            if cached is not None and cached.version == version:
                cached.checked_at = now
                return cached.index
            index = load_index(session, tariff_id)
            self.loads += 1
            self._cached[tariff_id] = _Cached(version, index, now)
            return index
