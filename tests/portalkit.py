"""Helpers for the portal tests: a portal on the test database, accounts, signed-in visitors, calls."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from falcon import testing

from boomerang import provisioning
from boomerang.store import transaction
from boomerang.store.models import (
    CallbackKind,
    CallbackSession,
    CallLeg,
    Cdr,
    LegRole,
    LegStatus,
    Role,
)
from portal.app import create_app

PASSWORD = "correct horse battery"


@dataclass
class Visitor:
    """A client of the portal: anonymous, signed in with a cookie (and its form token), or a bearer."""

    client: testing.TestClient
    headers: dict = field(default_factory=dict)
    cookies: dict = field(default_factory=dict)

    def request(self, method: str, path: str, **kwargs) -> testing.Result:
        headers = self.headers | kwargs.pop("headers", {})
        cookies = self.cookies | kwargs.pop("cookies", {})
        return self.client.simulate_request(method, path, headers=headers, cookies=cookies, **kwargs)

    def get(self, path: str, **kwargs) -> testing.Result:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> testing.Result:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs) -> testing.Result:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs) -> testing.Result:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs) -> testing.Result:
        return self.request("DELETE", path, **kwargs)


class Portal:
    def __init__(self, settings, db) -> None:
        self.settings = settings
        self.db = db
        self.app = create_app(settings)
        self.client = testing.TestClient(self.app)

    def anonymous(self) -> Visitor:
        return Visitor(self.client)

    def account(
        self,
        login: str,
        *,
        role: Role = Role.CUSTOMER,
        password: str | None = PASSWORD,
        balance: str = "0",
        tariff: str | None = None,
        currency: str = "USD",
    ) -> int:
        with transaction(self.db) as session:
            account = provisioning.create_account(
                session, provisioning.AccountSpec(login=login, currency=currency, role=role, tariff=tariff)
            )
            if password is not None:
                provisioning.set_password(session, login, password)
            if Decimal(balance) > 0:
                provisioning.top_up(session, login, Decimal(balance), reference=f"opening:{login}")
            return account.id

    def sign_in(self, login: str, password: str = PASSWORD) -> Visitor:
        result = self.client.simulate_post("/api/session", json={"login": login, "password": password})
        assert result.status_code == 201, result.text
        return Visitor(
            self.client,
            headers={"X-CSRF-Token": result.json["csrf_token"]},
            cookies={"boomerang_session": result.cookies["boomerang_session"].value},
        )

    def bearer(self, login: str, password: str = PASSWORD) -> Visitor:
        browser = self.sign_in(login, password)
        result = browser.post("/api/tokens", json={"name": "tests"})
        assert result.status_code == 201, result.text
        return Visitor(self.client, headers={"Authorization": f"Bearer {result.json['token']}"})

    def call(
        self,
        account_id: int,
        *,
        destination: str = "447700900123",
        caller: str = "15550001111",
        kind: CallbackKind = CallbackKind.ACCESS,
        at: datetime | None = None,
        costs: tuple[str, str] | None = ("0.0100", "0.2000"),
        ended: bool = True,
    ) -> str:
        """A callback with leg A to the caller and leg B to the destination, rated when `costs` is given."""
        at = at or datetime.now(UTC) - timedelta(hours=1)
        with transaction(self.db) as session:
            call = CallbackSession(
                kind=kind,
                account_id=account_id,
                caller_number=caller,
                destination_number=destination,
                state="ended" if ended else "bridged",
                requested_at=at,
                due_at=at,
                started_at=at,
                ended_at=at + timedelta(minutes=2) if ended else None,
            )
            session.add(call)
            session.flush()
            for role, number in ((LegRole.A, caller), (LegRole.B, destination)):
                leg = CallLeg(
                    id=str(uuid.uuid4()),
                    session_id=call.id,
                    role=role,
                    number=number,
                    status=LegStatus.ENDED if ended else LegStatus.ANSWERED,
                    answered_at=at,
                    ended_at=at + timedelta(minutes=2) if ended else None,
                )
                session.add(leg)
                session.flush()
                if costs and ended:
                    cost = Decimal(costs[0] if role is LegRole.A else costs[1])
                    session.add(
                        Cdr(
                            leg_id=leg.id,
                            session_id=call.id,
                            account_id=account_id,
                            role=role,
                            number=number,
                            destination="United Kingdom" if role is LegRole.B else "US",
                            answer_time=at,
                            end_time=at + timedelta(minutes=2),
                            duration_seconds=120,
                            billed_seconds=120,
                            price_per_minute=cost / 2,
                            connect_fee=Decimal(0),
                            cost=cost,
                            currency="USD",
                        )
                    )
            return call.id
