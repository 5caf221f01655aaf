"""Tenant isolation: customer A tries every resource and every method of the API against account B,
signed in by cookie and by bearer token, and can neither read nor change anything of B's."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from boomerang import provisioning
from boomerang.store import transaction
from boomerang.store.models import Account, ApiToken, AuthorizedCallerId, LedgerEntry, PortalSession
from portal.openapi import DOCUMENT
from tests.portalkit import PASSWORD, Portal

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Bodies that would be accepted if A were allowed, aimed at B where they name anything.
BODIES = {
    "/api/session": {"login": "bob", "password": "guess"},
    "/api/tokens": {"name": "mine"},
    "/api/me/password": {"current_password": PASSWORD, "new_password": PASSWORD},
    "/api/me/pin": {"password": PASSWORD, "pin": "97531"},
    "/api/me/caller-ids": {"number": "+447700900222"},
    "/api/admin/accounts": {"login": "mallory", "currency": "USD"},
    "/api/admin/accounts/{login}": {"status": "suspended", "credit_limit": "1000.00", "password": "taken-over"},
    "/api/admin/accounts/{login}/ledger": {"kind": "adjustment", "amount": "-9.00", "reason": "theft"},
    "/api/admin/accounts/{login}/caller-ids": {"number": "+447700900333"},
    "/api/admin/tariffs": {"name": "cheap", "currency": "USD"},
    "/api/admin/gateways": {"name": "rogue", "uri": "sip:192.0.2.66"},
    "/api/admin/gateways/{name}": {"enabled": False},
    "/api/admin/access-numbers": {"number": "4400000"},
    "/api/admin/access-numbers/{number}": {"enabled": False},
}


@pytest.fixture
def portal(migrated, db) -> Portal:
    return Portal(migrated, db)


def _state(db, login: str) -> dict:
    with transaction(db) as session:
        account = session.execute(select(Account).where(Account.login == login)).scalar_one()
        return {
            "account": (
                account.status,
                account.balance,
                account.credit_limit,
                account.password_hash,
                account.pin_digest,
            ),
            "caller_ids": session.execute(
                select(AuthorizedCallerId.number).where(AuthorizedCallerId.account_id == account.id)
            ).all(),
            "ledger": session.execute(select(LedgerEntry.id).where(LedgerEntry.account_id == account.id)).all(),
            "tokens": session.execute(select(ApiToken.id).where(ApiToken.account_id == account.id)).all(),
            "sessions": session.execute(select(PortalSession.id).where(PortalSession.account_id == account.id)).all(),
        }


def test_a_customer_can_read_or_change_nothing_of_another_account(portal, db):
    alice_id = portal.account("alice", balance="5")
    bob_id = portal.account("bob", balance="20")
    assert alice_id != bob_id
    with transaction(db) as session:
        provisioning.create_tariff(session, "retail", "USD")
        provisioning.add_gateway(session, provisioning.GatewaySpec(name="carrier", uri="sip:127.0.0.1:5080"))
        provisioning.add_access_number(session, provisioning.AccessNumberSpec(number="123333333"))
    bob_call = portal.call(bob_id, destination="447700900999", caller="15559990000")
    bob_browser = portal.sign_in("bob")
    assert bob_browser.post("/api/me/caller-ids", json={"number": "+15559990000"}).status_code == 201
    assert bob_browser.post("/api/me/pin", json={"password": PASSWORD, "pin": "24680"}).status_code == 204
    bob_token = bob_browser.post("/api/tokens", json={"name": "bob's"}).json
    before = _state(db, "bob")

    # What names one of B's things in a path.
    values = {
        "login": "bob",
        "number": "+15559990000",
        "call_id": bob_call,
        "token_id": str(bob_token["id"]),
        "name": "retail",
    }
    b_secrets = ["15559990000", bob_call, "447700900999", bob_token["token"], "20.00"]
    tried = 0
    for visitor in (portal.sign_in("alice"), portal.bearer("alice")):
        for template, operations in DOCUMENT["paths"].items():
            path = template
            for name, value in values.items():
                path = path.replace("{" + name + "}", value)
            for method in METHODS:
                if template == "/api/session" and method in ("POST", "DELETE"):
                    continue  # signing in as B needs B's password; signing out ends only A's session
                body = BODIES.get(template) if method in ("POST", "PATCH") else None
                kwargs = {"json": body} if body is not None else {}
                if method == "PUT":
                    kwargs = {
                        "body": "prefix,destination,price_per_minute\n1,free,0\n",
                        "headers": {"Content-Type": "text/csv"},
                    }
                result = visitor.request(method, path, **kwargs)
                tried += 1
                where = f"{method} {path} ({visitor.headers.keys()})"
                assert result.status_code < 500, where
                if method.lower() not in operations:
                    assert result.status_code == 405, where
                elif template.startswith("/api/admin/"):
                    assert result.status_code == 403, where
                    assert result.json["title"] == "Administrators only", where
                elif "{" in template:  # one of A's own resources, named with B's identifier
                    assert result.status_code == 404, where
                if method == "GET" and result.status_code == 200:
                    assert not any(secret in result.text for secret in b_secrets), where
    assert tried == 2 * len(DOCUMENT["paths"]) * len(METHODS) - 4
    assert _state(db, "bob") == before
    # B still signs in, with B's password, and B's token still works.
    assert bob_browser.get("/api/me").json["balance"] == "20.00"
    assert (
        portal.anonymous().get("/api/me", headers={"Authorization": f"Bearer {bob_token['token']}"}).status_code == 200
    )
