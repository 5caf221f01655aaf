"""Rating: max-duration decisions in process against the usual SQL lookup, reserve+settle cycles,
CDRs rated per second, on a generated 50,000-prefix tariff (`make bench BENCH=bench_rating`).

The tariff is built here, in a temporary SQLite file and in a MariaDB database of its own (created
on context.mariadb_url and dropped at the end). Every loop is bounded in count and in time. Money
is Decimal or integer micro-units throughout; only timings are floats.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import random
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pymysql
from sqlalchemy import Engine, insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from boomerang.settings import load as load_settings
from boomerang.store import make_engine, migrate
from boomerang.store.models import (
    Account,
    CallbackKind,
    CallbackSession,
    CallLeg,
    LedgerEntry,
    LedgerKind,
    LegRole,
    LegStatus,
    Rate,
    RoundingMode,
    Tariff,
)
from boomerang.store.types import from_micro_units, to_micro_units
from callback.credit_desk import CreditDesk
from callback.store import CallbackStore
from rating import cdrs, credit
from rating.decisions import RunningLeg, decide
from rating.pricing import Leg, Price, max_duration
from rating.tariff_cache import TariffCache

PREFIXES = 50_000
NUMBERS = 20_000
AT = datetime(2027, 3, 1, tzinfo=UTC)  # the moment of every decision: after some scheduled changes
FREE = Decimal("12.50")  # the caller's free credit for each decision
DECISIONS_MAX, DECISIONS_SECONDS = 2_000_000, 3.0
SQL_MAX, SQL_SECONDS = 20_000, 3.0
CYCLES_MAX, CYCLES_SECONDS = 3_000, 4.0
CDRS_MAX, CDRS_SECONDS = 3_000, 4.0
INCREMENTS = [(60, 60), (30, 6), (1, 1), (60, 1)]


# --- data ------------------------------------------------------------------------------------------


def tariff_rows(chance: random.Random) -> list[dict]:
    """50,000 distinct prefixes of 1 to 8 digits; one in ten with a price change scheduled."""
    prefixes: set[str] = set()
    countries = [str(code) for code in chance.sample(range(1, 999), 230)]
    while len(prefixes) < PREFIXES:
        prefix = chance.choice(countries) + "".join(chance.choices("0123456789", k=chance.randint(0, 5)))
        prefixes.add(prefix[:8])
    rows = []
    for prefix in sorted(prefixes):
        initial, subsequent = chance.choice(INCREMENTS)
        terms = {
            "prefix": prefix,
            "destination": f"Destination {prefix}",
            "connect_fee": Decimal(chance.choice([0, 0, 0, 10_000, 25_000])).scaleb(-6),
            "initial_increment": initial,
            "subsequent_increment": subsequent,
            "minimum_duration": chance.choice([0, 0, 0, 30]),
            "grace_seconds": chance.choice([0, 0, 3]),
            "rounding_mode": RoundingMode.UP,
            "rounding_digits": 4,
            "created_at": AT,
        }
        price = chance.randint(5_000, 900_000)
        rows.append(terms | {"price_per_minute": Decimal(price).scaleb(-6), "effective_from": datetime(1970, 1, 1)})
        if chance.random() < 0.1:
            later = AT + timedelta(days=chance.choice([-30, 30]))
            rows.append(terms | {"price_per_minute": Decimal(price * 9 // 10).scaleb(-6), "effective_from": later})
    for row in rows:
        row["effective_from"] = row["effective_from"].replace(tzinfo=UTC)
    return rows


def numbers(chance: random.Random, rows: list[dict]) -> list[str]:
    """Numbers to price: nine in ten under a tariff prefix, the rest anything (some have no rate)."""
    prefixes = [row["prefix"] for row in rows]
    found = []
    for _ in range(NUMBERS):
        start = chance.choice(prefixes) if chance.random() < 0.9 else str(chance.randint(1, 9))
        found.append(start + "".join(chance.choices("0123456789", k=chance.randint(11, 12) - len(start))))
    return found


def own_mariadb(server_url: str) -> tuple[str, Callable[[], None]]:
    server = make_url(server_url)
    name = f"boomerang_bench_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(
        host=server.host, port=server.port or 3306, user=server.username, password=server.password or ""
    )
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()

    url = server.set(database=name).update_query_dict({"ssl_disabled": "true"})
    return url.render_as_string(hide_password=False), drop


def load(engine: Engine, rows: list[dict]) -> int:
    """The tariff and its rates; returns the tariff's id."""
    with engine.begin() as connection:
        tariff_id = connection.execute(
            insert(Tariff.__table__).values(name="bench", currency="USD")
        ).inserted_primary_key[0]
        connection.execute(insert(Rate.__table__), [row | {"tariff_id": tariff_id} for row in rows])
    return tariff_id


def new_accounts(engine: Engine, tariff_id: int, count: int) -> list[int]:
    """Accounts with a million of credit, so that no cycle is refused for money."""
    ids = []
    with engine.begin() as connection:
        for _ in range(count):
            login = f"bench-{uuid.uuid4().hex[:12]}"
            account = {"login": login, "currency": "USD", "tariff_id": tariff_id}
            account |= {"max_concurrent_calls": 1000, "balance": Decimal(1_000_000)}
            account_id = connection.execute(insert(Account.__table__).values(**account)).inserted_primary_key[0]
            entry = {"account_id": account_id, "kind": LedgerKind.TOPUP, "amount": Decimal(1_000_000)}
            entry |= {"balance_after": Decimal(1_000_000), "reference": f"topup:{login}", "created_at": AT}
            connection.execute(insert(LedgerEntry.__table__).values(**entry))
            ids.append(account_id)
    return ids


def new_legs(engine: Engine, account_id: int, numbers: list[str], answered: bool) -> list[str]:
    """Callback sessions with one leg each, as the call controller creates them before reserving."""
    sessions, legs = [], []
    for number in numbers:
        session_id, leg_id = str(uuid.uuid4()), str(uuid.uuid4())
        sessions.append({"id": session_id, "kind": CallbackKind.WEB, "account_id": account_id, "state": "bench"})
        sessions[-1] |= {"caller_number": "447700900123", "due_at": AT, "requested_at": AT, "attempts": 0}
        leg = {"id": leg_id, "session_id": session_id, "role": LegRole.B, "sequence": 0, "number": number}
        leg |= {"caller_id": "", "status": LegStatus.ENDED if answered else LegStatus.QUEUED, "created_at": AT}
        if answered:
            leg |= {"answered_at": AT, "ended_at": AT + timedelta(seconds=len(legs) % 600)}
        legs.append(leg)
    with engine.begin() as connection:
        connection.execute(insert(CallbackSession.__table__), sessions)
        connection.execute(insert(CallLeg.__table__), legs)
    return [leg["id"] for leg in legs]


# --- decisions -------------------------------------------------------------------------------------


def bounded(step: Callable[[int], object], most: int, seconds: float) -> tuple[int, float]:
    """Run step(0), step(1)... until `most` calls or `seconds`; returns (calls, elapsed)."""
    start = time.perf_counter()
    done = 0
    while done < most:
        for _ in range(min(100, most - done)):
            step(done)
            done += 1
        if time.perf_counter() - start > seconds:
            break
    return done, time.perf_counter() - start


SQL_COLUMNS = (
    "id, prefix, price_per_minute, connect_fee, initial_increment, subsequent_increment, minimum_duration, "
    "grace_seconds, rounding_mode, rounding_digits"
)


def price_of_sql(row: tuple) -> Price:
    return Price(from_micro_units(row[2]), from_micro_units(row[3]), row[4], row[5], row[6], row[7], row[8], row[9])


def sql_decider(engine: Engine, tariff_id: int, variant: str) -> tuple[Callable[[str], tuple | None], Callable]:
    """One SQL query per decision, through the bare DB-API cursor (no ORM cost on the baseline)."""
    raw = engine.raw_connection()
    cursor = raw.cursor()
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    at = AT.replace(tzinfo=None)
    at_param = at.isoformat(sep=" ") if sqlite else at
    concat = "prefix || '%'" if sqlite else "CONCAT(prefix, '%%')"  # PyMySQL reads % as a placeholder

    def like(number: str) -> tuple | None:
        cursor.execute(
            f"SELECT {SQL_COLUMNS} FROM rates WHERE tariff_id = {mark} AND {mark} LIKE {concat} "
            f"AND effective_from <= {mark} ORDER BY LENGTH(prefix) DESC, effective_from DESC LIMIT 1",
            (tariff_id, number, at_param),
        )
        return cursor.fetchone()

    def prefixes_in(number: str) -> tuple | None:
        heads = [number[:length] for length in range(1, min(len(number), 15) + 1)]
        marks = ", ".join([mark] * len(heads))
        cursor.execute(
            f"SELECT {SQL_COLUMNS} FROM rates WHERE tariff_id = {mark} AND prefix IN ({marks}) "
            f"AND effective_from <= {mark} ORDER BY LENGTH(prefix) DESC, effective_from DESC LIMIT 1",
            (tariff_id, *heads, at_param),
        )
        return cursor.fetchone()

    return (like if variant == "like" else prefixes_in), raw.close


def decision_figures(sqlite: Engine, mariadb: Engine | None, tariff_id: dict, calls: list[str]) -> list[str]:
    """Prints the decision figures; returns the numbers that have a rate."""
    free = to_micro_units(FREE)
    with Session(sqlite) as session:
        started = time.perf_counter()
        index = TariffCache().get(session, tariff_id["sqlite"])
        loaded = time.perf_counter() - started
    print(f"index of {len(index)} rates ({PREFIXES} prefixes) loaded from SQLite in {loaded:.2f} s")

    def in_process(i: int) -> None:
        decide(index.lookup(calls[i % NUMBERS], AT), free)

    done, elapsed = bounded(in_process, DECISIONS_MAX, DECISIONS_SECONDS)
    ours = done / elapsed
    print(f"in process: {ours:,.0f} max-duration decisions/s (lookup + max duration, one core)")

    leg_a = RunningLeg(Leg(Price(Decimal("0.02")), 40), to_micro_units(Decimal("0.04")))

    def callback(i: int) -> None:
        decide(index.lookup(calls[i % NUMBERS], AT), free, (leg_a,))

    done, elapsed = bounded(callback, DECISIONS_MAX, DECISIONS_SECONDS)
    print(f"in process, callback (leg A running, leg B new): {done / elapsed:,.0f} decisions/s")

    engines = [("SQLite", sqlite, tariff_id["sqlite"])]
    if mariadb is not None:
        engines.append(("MariaDB", mariadb, tariff_id["mariadb"]))
    for name, engine, tariff in engines:
        for variant, label in (("like", "LIKE prefix || '%'"), ("in", "prefix IN (every prefix of the number)")):
            query, close = sql_decider(engine, tariff, variant)
            try:
                for number in calls[:300]:  # the same answers as the index, or the comparison is void
                    row, entry = query(number), index.lookup(number, AT)
                    assert (row and row[1]) == (entry and entry.prefix), number

                def by_sql(i: int, query=query) -> None:
                    row = query(calls[i % NUMBERS])
                    if row is not None:
                        max_duration((Leg(price_of_sql(row)),), free)

                done, elapsed = bounded(by_sql, SQL_MAX, SQL_SECONDS)
            finally:
                close()
            theirs = done / elapsed
            print(
                f"SQL on {name}, WHERE {label} ORDER BY LENGTH(prefix) DESC LIMIT 1: "
                f"{theirs:,.0f} decisions/s; in process is {ours / theirs:,.0f}x"
            )

    def cost_in_process(i: int) -> None:
        entry = index.lookup(calls[i % NUMBERS], AT)
        if entry is not None:
            entry.price.cost(i % 3600)

    done, elapsed = bounded(cost_in_process, DECISIONS_MAX, DECISIONS_SECONDS)
    print(f"in process: {done / elapsed:,.0f} CDR costs/s (lookup + billed seconds + rounded cost)")
    now = datetime.now(UTC)
    return [number for number in calls if index.lookup(number, now) is not None]


# --- reserve + settle, and CDR rating ------------------------------------------------------------------


def cycle_worker(url: str, tariff_id: int, account_id: int, legs: list[str], start, results) -> None:
    """Reserve then settle each leg, each in its own transaction, on one connection of its own."""
    engine = make_engine(url)
    cache = TariffCache()
    now = datetime.now(UTC)
    with engine.connect() as connection, Session(bind=connection, expire_on_commit=False) as session:
        with session.begin():
            cache.get(session, tariff_id)  # a process loads its tariffs once, not per call
        start.wait()  # every worker ready: the measured part starts together
        cpu = time.process_time()

        def one(i: int) -> None:
            leg_id = legs[i]
            with session.begin():
                decision = credit.reserve(session, cache, leg_id, now=now, seconds=60)
            assert decision.allowed, decision
            with session.begin():
                talked = decision.grant.granted_seconds // 2
                cdrs.settle(session, leg_id, now=now, answered_at=now, ended_at=now + timedelta(seconds=talked))

        done, elapsed = bounded(one, len(legs), CYCLES_SECONDS)
    engine.dispose()
    results.put((done, elapsed, time.process_time() - cpu))


def server_cpu_seconds() -> float | None:
    """CPU time of the local mariadbd, to show where a cycle's time goes; None if not local."""
    found = subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True, text=True).stdout.split()
    if not found:
        return None
    fields = open(f"/proc/{found[0]}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cycle_figures(name: str, url: str, tariff_id: int, calls: list[str], processes: int, shared: bool) -> None:
    engine = make_engine(url)
    accounts = new_accounts(engine, tariff_id, 1 if shared else processes)
    legs = [new_legs(engine, accounts[0 if shared else p], calls[:CYCLES_MAX], False) for p in range(processes)]
    engine.dispose()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start = context.Barrier(processes + 1)
    workers = [
        context.Process(
            target=cycle_worker, args=(url, tariff_id, accounts[0 if shared else p], legs[p], start, results)
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    server_before = server_cpu_seconds() if name == "MariaDB" else None
    outcomes = []
    while len(outcomes) < len(workers):
        try:
            outcomes.append(results.get(timeout=1))
        except queue.Empty:  # a worker that died puts nothing: do not wait for it for ever
            if any(worker.exitcode for worker in workers):
                raise RuntimeError("a cycle worker failed") from None
    for worker in workers:
        worker.join()
    if any(worker.exitcode for worker in workers):
        raise RuntimeError("a cycle worker failed")
    done = sum(outcome[0] for outcome in outcomes)
    rate = sum(outcome[0] / outcome[1] for outcome in outcomes)
    client = sum(outcome[2] for outcome in outcomes) / done * 1000
    where = "one shared account" if shared else "an account each"
    line = (
        f"reserve+settle on {name}, {processes} process{'es' if processes > 1 else ''} ({where}): {rate:,.0f} cycles/s"
    )
    line += f"; client CPU {client:.2f} ms/cycle"
    if server_before is not None:
        line += f", MariaDB server CPU {(server_cpu_seconds() - server_before) / done * 1000:.2f} ms/cycle"
    print(line)


DESK_ACCOUNTS = 20  # the calls belong to this many customers
DESK_CALLS = (1, 10, 50, 200)  # calls in progress at once (the controller carries 200 callbacks)
DESK_CYCLES_MAX, DESK_SECONDS = 8_000, 4.0


def desk_figures(name: str, url: str, tariff_id: int, calls: list[str], directory: str) -> None:
    """Reserve+settle as the call controller does it: each call reserves through its credit desk,
    which gathers the requests of all calls in progress into shared transactions, then settles."""
    settings = load_settings({"BOOMERANG_DATABASE_URL": url, "BOOMERANG_PATHS_VAR_DIR": f"{directory}/var"})
    engine = make_engine(url)
    accounts = new_accounts(engine, tariff_id, DESK_ACCOUNTS)

    def new_calls() -> Iterator[str]:
        numbers = calls[:DESK_CYCLES_MAX]
        per_account = [new_legs(engine, account, numbers[i::DESK_ACCOUNTS], True) for i, account in enumerate(accounts)]
        return iter([leg for turn in zip(*per_account, strict=False) for leg in turn])  # the customers interleaved

    store = CallbackStore(settings)
    with store.writing() as session:
        store.tariffs.get(session, tariff_id)  # the controller loads its tariffs once, not per call
    batches: list[int] = []
    reserve_many = store.reserve_many
    store.reserve_many = lambda legs, now: batches.append(len(legs)) or reserve_many(legs, now)

    async def in_progress(at_once: int, unused: Iterator[str]) -> tuple[int, float]:
        desk = CreditDesk(store)
        start = time.perf_counter()
        done = 0

        async def call() -> None:
            nonlocal done
            for leg_id in unused:
                decision = await desk.reserve(leg_id)
                assert decision.allowed, decision
                await desk.settle(leg_id)
                done += 1
                if time.perf_counter() - start > DESK_SECONDS:
                    return

        await asyncio.gather(*(call() for _ in range(at_once)))
        return done, time.perf_counter() - start

    try:
        for at_once in DESK_CALLS:
            batches.clear()
            unused = new_calls()
            cpu, server_before = time.process_time(), server_cpu_seconds() if name == "MariaDB" else None
            done, elapsed = asyncio.run(in_progress(at_once, unused))
            line = f"reserve+settle on {name} through the controller's credit desk, {at_once} calls at once: "
            line += f"{done / elapsed:,.0f} cycles/s (mean reserve batch {sum(batches) / len(batches):.1f} legs)"
            line += f"; client CPU {(time.process_time() - cpu) / done * 1000:.2f} ms/cycle"
            if server_before is not None:
                line += f", MariaDB server CPU {(server_cpu_seconds() - server_before) / done * 1000:.2f} ms/cycle"
            print(line)
    finally:
        store.close()
        engine.dispose()


CDRS_BATCH = 100  # finished legs settled together (`settle_many`), as the credit desk does at most


def cdr_figures(name: str, url: str, tariff_id: int, calls: list[str]) -> None:
    """Settling finished legs that hold no reservation: rate lookup, CDR and charge; one transaction
    each, then `CDRS_BATCH` per transaction."""
    engine = make_engine(url)
    [account_id] = new_accounts(engine, tariff_id, 1)
    cache = TariffCache()
    now = datetime.now(UTC)
    for per_transaction in (1, CDRS_BATCH):
        legs = new_legs(engine, account_id, calls[:CDRS_MAX], True)
        with engine.connect() as connection, Session(bind=connection, expire_on_commit=False) as session:
            with session.begin():
                cache.get(session, tariff_id)  # the index is loaded once per process, not per CDR

            def batch(i: int, legs=legs, session=session, size=per_transaction) -> None:
                with session.begin():
                    cdrs.settle_many(session, legs[i * size : (i + 1) * size], now=now, cache=cache)

            done, elapsed = bounded(batch, len(legs) // per_transaction, CDRS_SECONDS)
        each = f"{per_transaction} per transaction" if per_transaction > 1 else "each with its charge alone"
        print(f"CDRs rated on {name}, {each}: {done * per_transaction / elapsed:,.0f} per second")
    engine.dispose()


def main(context) -> None:
    chance = random.Random(20261126)
    rows = tariff_rows(chance)
    calls = numbers(chance, rows)
    with tempfile.TemporaryDirectory() as directory:
        sqlite_url = f"sqlite:///{directory}/rating.db"
        mariadb_url, drop = own_mariadb(context.mariadb_url)
        try:
            tariff_id = {}
            engines = {}
            for name, url in (("sqlite", sqlite_url), ("mariadb", mariadb_url)):
                migrate.upgrade(url)
                engines[name] = make_engine(url)
                started = time.perf_counter()
                tariff_id[name] = load(engines[name], rows)
                print(f"tariff of {len(rows)} rates loaded into {name} in {time.perf_counter() - started:.1f} s")
            routable = decision_figures(engines["sqlite"], engines["mariadb"], tariff_id, calls)
            for engine in engines.values():
                engine.dispose()

            cycle_figures("SQLite", sqlite_url, tariff_id["sqlite"], routable, 1, shared=False)
            for processes in (1, 2, 4):
                cycle_figures("MariaDB", mariadb_url, tariff_id["mariadb"], routable, processes, shared=False)
            cycle_figures("MariaDB", mariadb_url, tariff_id["mariadb"], routable, 4, shared=True)
            desk_figures("SQLite", sqlite_url, tariff_id["sqlite"], routable, directory)
            desk_figures("MariaDB", mariadb_url, tariff_id["mariadb"], routable, directory)
            cdr_figures("SQLite", sqlite_url, tariff_id["sqlite"], routable)
            cdr_figures("MariaDB", mariadb_url, tariff_id["mariadb"], routable)
        finally:
            drop()
