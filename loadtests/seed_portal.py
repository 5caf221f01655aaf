"""Customers for the portal load scenario: load0001... with one password, a tariff, money and calls.

    .venv/bin/python -m loadtests.seed_portal [--customers 200] [--calls 30]

Writes into the configured database (BOOMERANG_DATABASE_URL); run it on an empty or test database.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from boomerang import provisioning, security
from boomerang.settings import load
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import Account, CallbackKind, CallbackSession, CallLeg, Cdr, LegRole, LegStatus
from loadtests.portal_locustfile import PASSWORD

RATES = "prefix,destination,price_per_minute\n44,United Kingdom,0.10\n1,US and Canada,0.05\n"


def seed(url: str, customers: int, calls: int) -> None:
    engine = make_engine(url)
    # One hash for every account: hashing each password would take minutes and measure nothing.
    password_hash = security.hash_password(PASSWORD)
    now = datetime.now(UTC)
    with transaction(session_factory(engine)) as session:
        provisioning.create_tariff(session, "load", "USD")
        provisioning.import_rates(session, "load", RATES)
        tariff = provisioning.get_tariff(session, "load")
        for n in range(1, customers + 1):
            account = Account(login=f"load{n:04d}", currency="USD", tariff=tariff, password_hash=password_hash)
            session.add(account)
            session.flush()
            provisioning.top_up(session, account.login, Decimal("50"), reference=f"load:{n}")
            for c in range(calls):
                at = now - timedelta(hours=c + 1)
                call = CallbackSession(
                    kind=CallbackKind.ACCESS,
                    account_id=account.id,
                    caller_number="15550001111",
                    destination_number="447700900123",
                    state="ended",
                    requested_at=at,
                    due_at=at,
                    started_at=at,
                    ended_at=at + timedelta(minutes=2),
                )
                session.add(call)
                session.flush()
                for role, number in ((LegRole.A, "15550001111"), (LegRole.B, "447700900123")):
                    leg = CallLeg(
                        id=str(uuid.uuid4()),
                        session_id=call.id,
                        role=role,
                        number=number,
                        status=LegStatus.ENDED,
                        answered_at=at,
                        ended_at=at + timedelta(minutes=2),
                    )
                    session.add(leg)
                    session.flush()
                    session.add(
                        Cdr(
                            leg_id=leg.id,
                            session_id=call.id,
                            account_id=account.id,
                            role=role,
                            number=number,
                            destination="load",
                            answer_time=at,
                            end_time=at + timedelta(minutes=2),
                            duration_seconds=120,
                            billed_seconds=120,
                            price_per_minute=Decimal("0.10"),
                            connect_fee=Decimal(0),
                            cost=Decimal("0.20"),
                            currency="USD",
                        )
                    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--calls", type=int, default=30, help="calls in each customer's history")
    args = parser.parse_args()
    seed(load().database_url, args.customers, args.calls)


if __name__ == "__main__":
    main()
