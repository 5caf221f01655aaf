"""Tariffs cached as prefix indexes: a rates import takes effect in running processes, no restart."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from boomerang import provisioning
from boomerang.store import transaction
from boomerang.store.models import Tariff
from rating import rates_csv
from rating.tariff_cache import TariffCache, load_index
from tests.ratingkit import T0, UK_MOBILE, make_tariff

RATES = "prefix,destination,price_per_minute\n44,United Kingdom,0.10\n"
MOBILE = "prefix,destination,price_per_minute\n447,United Kingdom mobile,0.20\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def version(db, name: str) -> int:
    with transaction(db) as session:
        return session.execute(select(Tariff.version).where(Tariff.name == name)).scalar_one()


def test_an_import_reaches_a_running_cache_within_its_check_interval(db):
    with transaction(db) as session:
        retail = make_tariff(session, "retail", RATES)
    clock = Clock()
    cache = TariffCache(check_interval=5, clock=clock)

    def destination(number: str) -> str | None:
        with transaction(db) as session:
            found = cache.get(session, retail).lookup(number, T0)
        return found and found.destination

    assert destination(UK_MOBILE) == "United Kingdom"
    with transaction(db) as session:  # another process imports a new rate
        provisioning.import_rates(session, "retail", MOBILE)

    clock.now += 4.9
    assert destination(UK_MOBILE) == "United Kingdom"  # not checked yet: no query at all
    clock.now += 0.1
    assert destination(UK_MOBILE) == "United Kingdom mobile"
    assert cache.loads == 2
    clock.now += 60
    assert destination(UK_MOBILE) == "United Kingdom mobile"
    assert cache.loads == 2  # checked, unchanged: not loaded again


def test_every_change_of_rates_bumps_the_version_and_nothing_else_does(db):
    with transaction(db) as session:
        make_tariff(session, "retail", RATES)
    assert version(db, "retail") == 2  # created at 1, then the first import

    with pytest.raises(provisioning.InvalidInput), transaction(db) as session:
        provisioning.import_rates(session, "retail", RATES + "x,Bad,1\n")
    assert version(db, "retail") == 2  # a refused import changes nothing, version included
    with transaction(db) as session:
        rates_csv.apply(session, provisioning.get_tariff(session, "retail"), [])
    assert version(db, "retail") == 2
    with transaction(db) as session:
        provisioning.import_rates(session, "retail", RATES)  # replaces the rate by itself
    assert version(db, "retail") == 3


def test_each_tariff_is_cached_on_its_own(db):
    with transaction(db) as session:
        retail = make_tariff(session, "retail", RATES)
        wholesale = make_tariff(session, "wholesale", MOBILE)
    cache = TariffCache()
    with transaction(db) as session:
        assert cache.get(session, retail).lookup(UK_MOBILE, T0).price.per_minute == Decimal("0.1")
        assert cache.get(session, wholesale).lookup(UK_MOBILE, T0).price.per_minute == Decimal("0.2")
        with pytest.raises(LookupError, match="no tariff with id 999"):
            cache.get(session, 999)


def test_the_index_holds_every_effective_date(db):
    scheduled = "prefix,destination,price_per_minute,effective_from\n44,UK,0.10,\n44,UK,0.12,2027-01-05\n"
    with transaction(db) as session:
        retail = make_tariff(session, "retail", scheduled)
        index = load_index(session, retail)
    assert len(index) == 2
    assert index.lookup(UK_MOBILE, T0).price.per_minute == Decimal("0.1")
    assert index.lookup(UK_MOBILE, T0 + timedelta(days=1)).price.per_minute == Decimal("0.12")
    assert index.lookup(UK_MOBILE, T0).rate_id is not None
