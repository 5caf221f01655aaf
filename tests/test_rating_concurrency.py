"""Many calls of one account at once, each worker on its own connection: no overdraft, exact ledger.

On MariaDB 50 threads reserve, extend and settle against one account with a small balance; on a
SQLite file 8 threads do the same, serialised by BEGIN IMMEDIATE. Every worker checks the balance
right after each of its settlements, in the same transaction; at the end the ledger must add up to
the balance, every reservation must be closed, and some reservations must have been refused, which
shows the workers really competed for the credit.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from boomerang.store import make_engine, migrate, session_factory, transaction
from boomerang.store.models import Cdr, LedgerEntry
from rating import cdrs, credit
from rating.credit import Reason
from rating.tariff_cache import TariffCache
from tests.ratingkit import (
    UK_MOBILE,
    active_reservations,
    balance,
    cdr_cost_sum,
    ledger_sum,
    make_account,
    make_tariff,
    new_call,
    new_leg,
)

# 0.01 a second after a 0.01 connect fee, in 6-second increments: a 30-second chunk holds 0.31.
RATES = "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment\n44,UK,0.60,0.01,6,6\n"
CHUNK_SECONDS = 30


@dataclass
class WorkerLog:
    reserved: int = 0
    refused: int = 0
    cut: int = 0  # extensions that added nothing
    settled: int = 0
    balances: list[Decimal] = field(default_factory=list)  # right after each settlement


def worker(url: str, account_id: int, cycles: int, seed: int, start: threading.Barrier, log: WorkerLog) -> None:
    engine = make_engine(url)  # its own engine and connection, as each process has
    factory = session_factory(engine)
    cache = TariffCache()
    chance = random.Random(seed)
    try:
        start.wait()
        for _ in range(cycles):
            now = datetime.now(UTC)
            with transaction(factory) as session:
                leg_id = new_leg(session, new_call(session, account_id), UK_MOBILE)
            with transaction(factory) as session:
                decision = credit.reserve(session, cache, leg_id, now=now, seconds=CHUNK_SECONDS)
            if not decision.allowed:
                assert decision.reason is Reason.INSUFFICIENT_CREDIT, decision
                log.refused += 1
                with transaction(factory) as session:
                    cdrs.settle(session, leg_id, now=now)  # never answered: nothing to rate
                continue
            log.reserved += 1
            with transaction(factory) as session:
                [grant] = credit.extend(session, [leg_id], now=now, seconds=CHUNK_SECONDS)
            log.cut += grant.added_seconds == 0
            talked = chance.randint(0, grant.granted_seconds)  # the controller cuts at the granted time
            with transaction(factory) as session:
                cdrs.settle(session, leg_id, now=now, answered_at=now, ended_at=now + timedelta(seconds=talked))
                log.balances.append(balance(session, account_id))  # still under the account's lock
            log.settled += 1
    finally:
        engine.dispose()


def run_workers(url: str, workers: int, cycles: int, top_up: str, credit_limit: str) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            make_tariff(session, "retail", RATES)
            account_id = make_account(
                session, "shared", tariff="retail", balance=top_up, credit_limit=credit_limit, max_calls=workers
            )
        logs = [WorkerLog() for _ in range(workers)]
        errors: list[BaseException] = []
        start = threading.Barrier(workers)

        def run(number: int) -> None:
            try:
                worker(url, account_id, cycles, number, start, logs[number])
            except BaseException as exc:  # reported below: a thread's exception would be lost
                errors.append(exc)
                start.abort()

        threads = [threading.Thread(target=run, args=(number,)) for number in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

        floor = -Decimal(credit_limit)
        observed = [value for log in logs for value in log.balances]
        assert observed and min(observed) >= floor
        assert sum(log.refused for log in logs) > 0, "no reservation was refused: the test did not compete"
        settled = sum(log.settled for log in logs)
        with transaction(factory) as session:
            final = balance(session, account_id)
            assert final >= floor
            assert ledger_sum(session, account_id) == final
            assert Decimal(top_up) - cdr_cost_sum(session, account_id) == final
            assert session.execute(select(func.count()).select_from(Cdr)).scalar_one() == settled
            assert session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one() <= settled + 1
            assert active_reservations(session, account_id) == 0
    finally:
        engine.dispose()


def test_many_workers_never_overdraw_one_account(database_url):
    if database_url.startswith("sqlite"):
        run_workers(database_url, workers=8, cycles=15, top_up="6.00", credit_limit="1.00")
    else:
        run_workers(database_url, workers=50, cycles=10, top_up="25.00", credit_limit="5.00")


def test_a_leg_settled_by_several_workers_at_once_is_charged_once(database_url):
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    with transaction(session_factory(engine)) as session:
        make_tariff(session, "retail", RATES)
        account_id = make_account(session, "alice", tariff="retail", balance="10")
        leg_id = new_leg(session, new_call(session, account_id), UK_MOBILE, answered_at=now)
    start = threading.Barrier(8)
    seen: list[int] = []

    def settle() -> None:
        own = make_engine(database_url)
        try:
            start.wait()
            with transaction(session_factory(own)) as session:
                seen.append(cdrs.settle(session, leg_id, now=now, ended_at=now + timedelta(seconds=42)).id)
        finally:
            own.dispose()

    threads = [threading.Thread(target=settle) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(seen) == 8 and len(set(seen)) == 1
        with transaction(session_factory(engine)) as session:
            assert balance(session, account_id) == Decimal("9.57") == ledger_sum(session, account_id)  # 0.01 + 0.42
    finally:
        engine.dispose()


def test_batches_over_several_accounts_never_overdraw_or_deadlock(database_url):
    """Workers reserve and settle batches that mix the legs of three accounts in random orders, as
    controllers gather their calls: the accounts are locked in id order, so no batch waits on another
    in a cycle, and none of the accounts goes below its credit limit."""
    workers, rounds = (8, 8) if database_url.startswith("sqlite") else (16, 8)
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        make_tariff(session, "retail", RATES)
        accounts = [
            make_account(session, f"a{n}", tariff="retail", balance="3.00", credit_limit="0.50", max_calls=1000)
            for n in range(3)
        ]
    start = threading.Barrier(workers)
    errors: list[BaseException] = []
    refused = []

    def work(seed: int) -> None:
        own = make_engine(database_url)
        sessions = session_factory(own)
        cache = TariffCache()
        chance = random.Random(seed)
        try:
            start.wait()
            for _ in range(rounds):
                now = datetime.now(UTC)
                legs = []
                for owner in chance.sample(accounts * 2, 6):
                    with transaction(sessions) as session:  # each call created on its own, as callers do
                        legs.append(new_leg(session, new_call(session, owner), UK_MOBILE))
                with transaction(sessions) as session:
                    decisions = credit.reserve_many(session, cache, legs, now=now, seconds=CHUNK_SECONDS)
                refused.extend(leg for leg, decision in zip(legs, decisions, strict=True) if not decision.allowed)
                times = {
                    decision.grant.leg_id: (
                        now,
                        now + timedelta(seconds=chance.randint(0, decision.grant.granted_seconds)),
                    )
                    for decision in decisions
                    if decision.allowed
                }
                chance.shuffle(legs)
                with transaction(sessions) as session:
                    cdrs.settle_many(session, legs, now=now, times=times)
        except BaseException as exc:  # reported below: a thread's exception would be lost
            errors.append(exc)
            start.abort()
        finally:
            own.dispose()

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert refused, "no reservation was refused: the test did not compete"
        with transaction(factory) as session:
            for account_id in accounts:
                final = balance(session, account_id)
                assert final >= Decimal("-0.50")
                assert ledger_sum(session, account_id) == final == Decimal("3.00") - cdr_cost_sum(session, account_id)
                assert active_reservations(session, account_id) == 0
    finally:
        engine.dispose()
