"""The customer's JSON API: what a customer sees of their own account, and what they may change."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from boomerang import provisioning, security
from boomerang.store import transaction
from boomerang.store.models import Account, CallbackKind
from tests.conftest import TEST_SECRET
from tests.portalkit import PASSWORD, Portal


@pytest.fixture
def portal(migrated, db) -> Portal:
    portal = Portal(migrated, db)
    with transaction(db) as session:
        provisioning.create_tariff(session, "retail", "USD")
        provisioning.import_rates(
            session,
            "retail",
            "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment\n"
            "44,United Kingdom,0.10,0,60,60\n447,United Kingdom mobile,0.20,0.05,30,6\n",
        )
    return portal


def test_the_dashboard_shows_balance_available_credit_and_recent_calls(portal, db):
    alice = portal.account("alice", balance="12.50", tariff="retail")
    with transaction(db) as session:
        provisioning.update_account(session, "alice", {"credit_limit": Decimal("5")})
    for hours in range(7):
        portal.call(alice, at=datetime.now(UTC) - timedelta(hours=hours + 1))
    me = portal.sign_in("alice").get("/api/me")
    assert me.status_code == 200
    assert me.json["balance"] == "12.50" and me.json["credit_limit"] == "5.00"
    assert me.json["available_credit"] == "17.50" and me.json["currency"] == "USD"
    assert len(me.json["recent_calls"]) == 5
    assert me.json["recent_calls"][0]["cost"] == "0.21"


def test_caller_ids_are_validated_unique_across_accounts_and_limited(portal, db):
    portal.account("alice")
    portal.account("bob")
    alice, bob = portal.sign_in("alice"), portal.sign_in("bob")
    added = alice.post("/api/me/caller-ids", json={"number": "0044 7700 900123"})
    assert added.status_code == 201 and added.json["number"] == "+447700900123" and added.json["origin"] == "manual"
    national = alice.post("/api/me/caller-ids", json={"number": "07700900123"})
    assert national.status_code == 400 and "international format" in national.json["detail"]
    garbage = alice.post("/api/me/caller-ids", json={"number": "call me"})
    assert garbage.status_code == 400 and "not a telephone number" in garbage.json["detail"]
    again = alice.post("/api/me/caller-ids", json={"number": "+447700900123"})
    assert again.status_code == 409 and "already authorized" in again.json["detail"]
    taken = bob.post("/api/me/caller-ids", json={"number": "+447700900123"})
    assert taken.status_code == 409 and taken.json["detail"] == "+447700900123 is authorized for another account"
    for n in range(4):
        assert alice.post("/api/me/caller-ids", json={"number": f"+1555000000{n}"}).status_code == 201
    full = alice.post("/api/me/caller-ids", json={"number": "+15550000009"})
    assert full.status_code == 409 and "at most 5 caller IDs" in full.json["detail"]
    listed = alice.get("/api/me/caller-ids", params={"per_page": "2"}).json
    assert (
        listed["total"] == 5 and len(listed["items"]) == 2 and listed["next"] == "/api/me/caller-ids?per_page=2&page=2"
    )
    assert alice.delete("/api/me/caller-ids/+447700900123").status_code == 204
    assert alice.delete("/api/me/caller-ids/+447700900123").status_code == 404
    assert bob.post("/api/me/caller-ids", json={"number": "+447700900123"}).status_code == 201


def test_the_pin_is_changed_with_the_password_and_must_be_unique(portal, db):
    portal.account("alice")
    portal.account("bob")
    alice, bob = portal.sign_in("alice"), portal.sign_in("bob")
    assert alice.post("/api/me/pin", json={"password": "nope", "pin": "864201"}).status_code == 403
    bad = alice.post("/api/me/pin", json={"password": PASSWORD, "pin": "12"})
    assert bad.status_code == 400 and "4 to 12 digits" in bad.json["detail"]
    assert alice.post("/api/me/pin", json={"password": PASSWORD, "pin": "864201"}).status_code == 204
    with transaction(db) as session:
        digest = session.execute(select(Account.pin_digest).where(Account.login == "alice")).scalar_one()
    assert digest == security.pin_digest(TEST_SECRET.encode(), "864201")
    taken = bob.post("/api/me/pin", json={"password": PASSWORD, "pin": "864201"})
    assert taken.status_code == 409 and taken.json["detail"] == "this PIN cannot be used; choose another"
    assert alice.get("/api/me").json["has_pin"] is True


def test_history_shows_each_legs_cost_with_filters_and_pages(portal):
    alice = portal.account("alice")
    now = datetime.now(UTC)
    uk = portal.call(alice, destination="447700900123", at=now - timedelta(days=3), costs=("0.0100", "0.2000"))
    us = portal.call(alice, destination="12125550100", at=now - timedelta(days=1), kind=CallbackKind.SMS)
    unanswered = portal.call(alice, destination="33123456789", at=now - timedelta(hours=1), costs=None)
    browser = portal.sign_in("alice")
    calls = browser.get("/api/me/calls").json
    assert [call["id"] for call in calls["items"]] == [unanswered, us, uk]
    first = calls["items"][2]
    assert [(leg["role"], leg["number"], leg["cost"]) for leg in first["legs"]] == [
        ("A", "+15550001111", "0.01"),
        ("B", "+447700900123", "0.20"),
    ]
    assert first["cost"] == "0.21" and first["legs"][1]["billed_seconds"] == 120
    assert calls["items"][0]["legs"][1]["cost"] is None and calls["items"][0]["cost"] == "0.00"

    def ids(**params):
        return [call["id"] for call in browser.get("/api/me/calls", params=params).json["items"]]

    assert ids(kind="sms") == [us]
    assert ids(number="+44") == [uk]
    day = (now - timedelta(days=3)).date().isoformat()
    assert ids(to=day) == [uk]
    assert ids(**{"from": (now - timedelta(days=2)).date().isoformat()}) == [unanswered, us]
    paged = browser.get("/api/me/calls", params={"per_page": "2", "page": "2"}).json
    assert [call["id"] for call in paged["items"]] == [uk] and paged["next"] is None
    assert browser.get("/api/me/calls", params={"from": "yesterday"}).status_code == 400
    one = browser.get(f"/api/me/calls/{uk}")
    assert one.status_code == 200 and one.json["cost"] == "0.21"


def test_history_exports_as_csv_one_line_per_leg(portal):
    alice = portal.account("alice")
    call = portal.call(alice)
    portal.call(alice, kind=CallbackKind.WEB)
    result = portal.sign_in("alice").get("/api/me/calls.csv", params={"kind": "access"})
    assert result.status_code == 200 and result.headers["content-type"].startswith("text/csv")
    assert "attachment" in result.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert [(row["call_id"], row["leg"], row["cost"]) for row in rows] == [(call, "A", "0.01"), (call, "B", "0.20")]


def test_rate_lookup_prices_a_number_with_the_accounts_tariff(portal):
    portal.account("alice", balance="1.05", tariff="retail")
    browser = portal.sign_in("alice")
    mobile = browser.get("/api/me/rate", params={"number": "+447700900123"})
    assert mobile.status_code == 200
    assert mobile.json["destination"] == "United Kingdom mobile" and mobile.json["price_per_minute"] == "0.20"
    assert mobile.json["connect_fee"] == "0.05" and mobile.json["cost_of_one_minute"] == "0.25"
    assert mobile.json["max_call_seconds"] == 300  # (1.05 - 0.05) / 0.20 per minute
    assert browser.get("/api/me/rate", params={"number": "+33123456789"}).status_code == 404
    assert browser.get("/api/me/rate", params={"number": "abc"}).status_code == 400
    assert browser.get("/api/me/rate").status_code == 400
    portal.account("bob")
    no_tariff = portal.sign_in("bob").get("/api/me/rate", params={"number": "+447700900123"})
    assert no_tariff.status_code == 404 and "no tariff" in no_tariff.json["detail"]


def test_the_ledger_lists_balance_changes_newest_first(portal, db):
    portal.account("alice", balance="10")
    with transaction(db) as session:
        provisioning.top_up(session, "alice", Decimal("2.5"), reference="invoice-7", note="invoice 7")
    entries = portal.sign_in("alice").get("/api/me/ledger").json["items"]
    assert [(e["kind"], e["amount"], e["balance_after"], e["description"]) for e in entries] == [
        ("topup", "2.50", "12.50", "invoice 7"),
        ("topup", "10.00", "10.00", "top-up"),
    ]


def test_requests_the_api_cannot_read_are_refused_with_a_useful_problem(portal):
    portal.account("alice")
    api = portal.bearer("alice")
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    form = api.post("/api/me/caller-ids", body="number=1", headers=form_type)
    assert form.status_code == 415 and form.headers["content-type"] == "application/problem+json"
    unknown = api.post("/api/me/caller-ids", json={"number": "+447700900123", "account": "bob"})
    assert unknown.status_code == 400 and unknown.json["detail"] == "unknown fields: account"
    broken = api.post("/api/me/caller-ids", body="{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json["status"] == 400
    wrong_type = api.post("/api/me/caller-ids", json={"number": 447700900123})
    assert wrong_type.status_code == 400 and wrong_type.json["detail"] == "number must be a string"
    assert api.get("/api/me/calls", params={"per_page": "1000"}).status_code == 400
    missing = api.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
