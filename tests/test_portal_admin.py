"""The administrators' JSON API: accounts and their money, tariffs, gateways, access numbers, live
calls, the SMS log and the ledger."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from boomerang.store import transaction
from boomerang.store.models import (
    AccessNumber,
    Gateway,
    Role,
    SmsChannel,
    SmsDirection,
    SmsMessage,
    SmsStatus,
)
from tests.portalkit import PASSWORD, Portal

RATES = "prefix,destination,price_per_minute,initial_increment,subsequent_increment\n44,United Kingdom,0.10,60,60\n"


@pytest.fixture
def portal(migrated, db) -> Portal:
    return Portal(migrated, db)


@pytest.fixture
def root(portal):
    portal.account("root", role=Role.ADMIN)
    return portal.bearer("root")


def test_administration_is_for_administrators_only(portal, root):
    portal.account("alice")
    assert portal.anonymous().get("/api/admin/accounts").status_code == 401
    assert portal.sign_in("alice").get("/api/admin/accounts").status_code == 403
    assert root.get("/api/admin/accounts").status_code == 200


def test_accounts_are_created_listed_changed_and_suspended(portal, root):
    assert root.post("/api/admin/tariffs", json={"name": "retail", "currency": "USD"}).status_code == 201
    made = root.post(
        "/api/admin/accounts",
        json={"login": "alice", "currency": "USD", "tariff": "retail", "password": "s3cret-pw", "max_caller_ids": 2},
    )
    assert made.status_code == 201, made.text
    assert made.json["tariff"] == "retail" and made.json["can_sign_in"] and made.json["max_caller_ids"] == 2
    assert "s3cret-pw" not in made.text
    again = root.post("/api/admin/accounts", json={"login": "alice", "currency": "USD"})
    assert again.status_code == 409 and again.json["detail"] == "an account 'alice' already exists"
    eur = root.post("/api/admin/accounts", json={"login": "bob", "currency": "EUR", "tariff": "retail"})
    assert eur.status_code == 400 and "is in USD" in eur.json["detail"]
    assert root.post("/api/admin/accounts", json={"login": "x", "currency": "USD"}).status_code == 400
    listed = root.get("/api/admin/accounts", params={"q": "ali"}).json
    assert [a["login"] for a in listed["items"]] == ["alice"]

    alice = portal.sign_in("alice", "s3cret-pw")
    changed = root.patch("/api/admin/accounts/alice", json={"credit_limit": "7.50", "language": "es"})
    assert changed.status_code == 200 and changed.json["credit_limit"] == "7.50" and changed.json["language"] == "es"
    assert alice.get("/api/me").json["available_credit"] == "7.50"
    assert root.patch("/api/admin/accounts/alice", json={"status": "suspended"}).json["status"] == "suspended"
    assert alice.get("/api/me").status_code == 401
    assert root.get("/api/admin/accounts", params={"status": "suspended"}).json["total"] == 1
    assert root.patch("/api/admin/accounts/alice", json={"status": "active"}).status_code == 200
    portal.sign_in("alice", "s3cret-pw")
    own = root.patch("/api/admin/accounts/root", json={"status": "suspended"})
    assert own.status_code == 409
    assert root.get("/api/admin/accounts/nobody").status_code == 404


def test_top_ups_and_adjustments_go_to_the_ledger_with_their_reason(portal, root):
    portal.account("alice")
    topup = root.post(
        "/api/admin/accounts/alice/ledger",
        json={"kind": "topup", "amount": "25.00", "reason": "invoice 1042", "reference": "inv-1042"},
    )
    assert topup.status_code == 201
    assert (topup.json["amount"], topup.json["description"], topup.json["created_by"]) == (
        "25.00",
        "invoice 1042",
        "root",
    )
    repeat = root.post(
        "/api/admin/accounts/alice/ledger",
        json={"kind": "topup", "amount": "25.00", "reason": "invoice 1042", "reference": "inv-1042"},
    )
    assert repeat.status_code == 200 and repeat.json["id"] == topup.json["id"]
    adjust = root.post(
        "/api/admin/accounts/alice/ledger", json={"kind": "adjustment", "amount": "-2.5", "reason": "double top-up"}
    )
    assert adjust.status_code == 201 and adjust.json["balance_after"] == "22.50"
    no_reason = root.post("/api/admin/accounts/alice/ledger", json={"kind": "adjustment", "amount": "1", "reason": " "})
    assert no_reason.status_code == 400 and "reason" in no_reason.json["detail"]
    negative = root.post("/api/admin/accounts/alice/ledger", json={"kind": "topup", "amount": "-1", "reason": "x"})
    assert negative.status_code == 400
    as_float = root.post("/api/admin/accounts/alice/ledger", json={"kind": "topup", "amount": 0.1, "reason": "x"})
    assert as_float.status_code == 400 and as_float.json["detail"] == "amount must be a string"
    assert root.get("/api/admin/accounts/alice").json["balance"] == "22.50"
    ledger = root.get("/api/admin/ledger", params={"account": "alice"}).json["items"]
    assert [(e["kind"], e["amount"], e["description"], e["account"]) for e in ledger] == [
        ("adjustment", "-2.50", "double top-up", "alice"),
        ("topup", "25.00", "invoice 1042", "alice"),
    ]
    assert portal.sign_in("alice").get("/api/me/ledger").json["total"] == 2


def test_tariffs_import_and_export_csv_and_look_up_rates(root):
    assert root.post("/api/admin/tariffs", json={"name": "retail", "currency": "USD"}).status_code == 201
    csv_type = {"Content-Type": "text/csv"}
    imported = root.put("/api/admin/tariffs/retail/rates.csv", body=RATES, headers=csv_type)
    assert imported.status_code == 200 and imported.json == {"added": 1, "replaced": 0}
    bad = root.put(
        "/api/admin/tariffs/retail/rates.csv", body=RATES + "1x,US,0.05,30,6\n33,France,-1,60,60\n", headers=csv_type
    )
    assert bad.status_code == 400 and "line 3" in bad.json["detail"] and "line 4" in bad.json["detail"]
    assert root.get("/api/admin/tariffs/retail").json["rates"] == 1
    exported = root.get("/api/admin/tariffs/retail/rates.csv")
    assert exported.headers["content-type"].startswith("text/csv") and "44,United Kingdom,0.1" in exported.text
    rate = root.get("/api/admin/tariffs/retail/rate", params={"number": "+447700900123", "seconds": "61"})
    assert rate.json["destination"] == "United Kingdom" and rate.json["billed_seconds"] == 120
    assert rate.json["cost"] == "0.20"
    assert root.get("/api/admin/tariffs/retail/rate", params={"number": "+33123456789"}).status_code == 404
    assert root.put("/api/admin/tariffs/retail/rates.csv", json={"rates": []}).status_code == 415


def test_gateways_and_access_numbers_are_added_and_changed(root, db):
    gateway = root.post(
        "/api/admin/gateways", json={"name": "carrier", "uri": "sip:192.0.2.10:5060", "trusted_source": "192.0.2.10"}
    )
    assert gateway.status_code == 201 and gateway.json["trusted_source"] == "192.0.2.10/32"
    bad_uri = root.post("/api/admin/gateways", json={"name": "x", "uri": "http://example"})
    assert bad_uri.status_code == 400 and "not a SIP URI" in bad_uri.json["detail"]
    changed = root.patch("/api/admin/gateways/carrier", json={"enabled": False, "priority": 3})
    assert changed.json["enabled"] is False and changed.json["priority"] == 3
    national = root.patch("/api/admin/gateways/carrier", json={"number_format": "national"})
    assert national.status_code == 400 and "country code" in national.json["detail"]

    number = root.post("/api/admin/access-numbers", json={"number": "442071234567", "ring_time_seconds": 4})
    assert number.status_code == 201 and number.json["ring_time_seconds"] == 4
    settings = {
        "callback_delay_seconds": 5,
        "known_callers_only": True,
        "announce_balance": False,
        "retry_attempts": 2,
        "retry_interval_seconds": 60,
        "allow_pin": False,
    }
    changed = root.patch("/api/admin/access-numbers/442071234567", json=settings)
    assert changed.status_code == 200 and all(changed.json[key] == value for key, value in settings.items())
    neither = root.patch("/api/admin/access-numbers/442071234567", json={"allow_ani": False})
    assert neither.status_code == 400 and "PIN or caller ID" in neither.json["detail"]
    with transaction(db) as session:
        stored = session.execute(select(AccessNumber)).scalar_one()
        assert (stored.retry_attempts, stored.allow_ani, stored.known_callers_only) == (2, True, True)
        assert session.execute(select(Gateway.enabled)).scalar_one() is False


def test_live_calls_list_only_calls_not_ended_with_their_account(portal, root):
    alice = portal.account("alice")
    portal.call(alice)
    running = portal.call(alice, ended=False)
    calls = root.get("/api/admin/calls").json
    assert [(call["id"], call["account"]) for call in calls["items"]] == [(running, "alice")]
    history = root.get("/api/admin/accounts/alice/calls").json
    assert history["total"] == 2


def test_the_sms_log_never_shows_a_pin(root, db):
    with transaction(db) as session:
        for text in ("REG 864201", "BAL"):
            session.add(
                SmsMessage(
                    direction=SmsDirection.INBOUND,
                    channel=SmsChannel.SIP,
                    sender="447700900123",
                    receiver="1234000000",
                    text=text,
                    status=SmsStatus.HANDLED,
                )
            )
    log = root.get("/api/admin/sms", params={"number": "+447700900123"})
    assert [message["text"] for message in log.json["items"]] == ["BAL", "REG ****"]
    assert "864201" not in log.text


def test_an_administrator_sets_a_customers_password_and_pin_without_seeing_them(portal, root):
    portal.account("alice", password=None)
    changed = root.patch("/api/admin/accounts/alice", json={"password": "fresh-pass", "pin": "13579"})
    assert changed.status_code == 200 and changed.json["can_sign_in"] and changed.json["has_pin"]
    assert "fresh-pass" not in changed.text and "13579" not in changed.text
    portal.sign_in("alice", "fresh-pass")
    assert PASSWORD not in changed.text
