"""Portal sign-in as users meet it: cookies, form tokens, bearer tokens, lock-out, sign-out, passwords."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from boomerang.store import transaction
from boomerang.store.models import Account, AccountStatus, LoginThrottle, PortalSession
from tests.conftest import make_settings
from tests.portalkit import PASSWORD, Portal


@pytest.fixture
def portal(migrated, db) -> Portal:
    return Portal(migrated, db)


def test_signing_in_sets_an_httponly_samesite_cookie_whose_token_is_not_stored(portal, db):
    portal.account("alice")
    result = portal.anonymous().post("/api/session", json={"login": "alice", "password": PASSWORD})
    assert result.status_code == 201
    assert result.json["login"] == "alice" and result.json["role"] == "customer" and result.json["csrf_token"]
    cookie = result.cookies["boomerang_session"]
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure and cookie.path == "/"
    with transaction(db) as session:
        stored = session.execute(select(PortalSession.token_digest)).scalar_one()
    assert stored != cookie.value and stored == hashlib.sha256(cookie.value.encode()).hexdigest()
    assert PASSWORD not in result.text


def test_the_cookie_is_secure_when_the_portal_is_served_over_https(tmp_path, migrated, db):
    settings = make_settings(tmp_path, migrated.database_url, portal_secure_cookies="true")
    portal = Portal(settings, db)
    portal.account("alice")
    result = portal.anonymous().post("/api/session", json={"login": "alice", "password": PASSWORD})
    assert result.cookies["boomerang_session"].secure


def test_a_wrong_password_or_login_is_refused_alike_as_problem_json(portal):
    portal.account("alice")
    wrong_password = portal.anonymous().post("/api/session", json={"login": "alice", "password": "guess"})
    wrong_login = portal.anonymous().post("/api/session", json={"login": "nobody", "password": "guess"})
    for result in (wrong_password, wrong_login):
        assert result.status_code == 401
        assert result.headers["content-type"] == "application/problem+json"
        assert result.json["detail"] == "the login or password is wrong"
        assert "guess" not in result.text
        assert "boomerang_session" not in result.cookies


def test_repeated_failures_lock_the_login_out_even_for_the_right_password(portal, db):
    portal.account("alice")
    portal.account("bob")
    for _ in range(5):
        assert portal.anonymous().post("/api/session", json={"login": "alice", "password": "x"}).status_code == 401
    locked = portal.anonymous().post("/api/session", json={"login": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert 800 < int(locked.headers["retry-after"]) <= 900
    assert "try again in 15 minutes" in locked.json["detail"]
    # Another login from the same address is not locked.
    assert portal.anonymous().post("/api/session", json={"login": "bob", "password": PASSWORD}).status_code == 201
    # When the lock-out is over, the right password works again.
    with transaction(db) as session:
        session.execute(update(LoginThrottle).values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert portal.anonymous().post("/api/session", json={"login": "alice", "password": PASSWORD}).status_code == 201


def test_an_address_trying_many_logins_is_rate_limited(portal):
    portal.account("alice")
    for attempt in range(30):
        result = portal.anonymous().post("/api/session", json={"login": f"guess{attempt}", "password": "x"})
        assert result.status_code == 401
    limited = portal.anonymous().post("/api/session", json={"login": "alice", "password": PASSWORD})
    assert limited.status_code == 429 and limited.headers["retry-after"]


def test_changes_by_cookie_need_the_form_token_and_bearer_requests_do_not(portal):
    portal.account("alice")
    browser = portal.sign_in("alice")
    without = browser.post("/api/me/caller-ids", json={"number": "+447700900001"}, headers={"X-CSRF-Token": ""})
    assert without.status_code == 403 and "token" in without.json["title"]
    forged = browser.post("/api/me/caller-ids", json={"number": "+447700900001"}, headers={"X-CSRF-Token": "0" * 64})
    assert forged.status_code == 403
    assert browser.post("/api/me/caller-ids", json={"number": "+447700900001"}).status_code == 201
    api = portal.bearer("alice")
    assert api.post("/api/me/caller-ids", json={"number": "+447700900002"}).status_code == 201
    assert [item["number"] for item in browser.get("/api/me/caller-ids").json["items"]] == [
        "+447700900001",
        "+447700900002",
    ]


def test_signing_out_ends_the_session(portal, db):
    portal.account("alice")
    browser = portal.sign_in("alice")
    assert browser.get("/api/session").json["login"] == "alice"
    result = browser.delete("/api/session")
    assert result.status_code == 204
    assert result.cookies["boomerang_session"].value == ""
    assert browser.get("/api/me").status_code == 401
    with transaction(db) as session:
        assert session.execute(select(PortalSession)).first() is None


def test_an_expired_session_no_longer_signs_in(portal, db):
    portal.account("alice")
    browser = portal.sign_in("alice")
    with transaction(db) as session:
        session.execute(update(PortalSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert browser.get("/api/me").status_code == 401


def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(portal):
    portal.account("alice")
    here = portal.sign_in("alice")
    elsewhere = portal.sign_in("alice")
    wrong = here.post("/api/me/password", json={"current_password": "nope", "new_password": "new-secret"})
    assert wrong.status_code == 403 and wrong.json["detail"] == "the current password is wrong"
    short = here.post("/api/me/password", json={"current_password": PASSWORD, "new_password": "ab"})
    assert short.status_code == 400 and "at least" in short.json["detail"]
    done = here.post("/api/me/password", json={"current_password": PASSWORD, "new_password": "new-secret"})
    assert done.status_code == 204 and done.text == ""
    assert here.get("/api/me").status_code == 200
    assert elsewhere.get("/api/me").status_code == 401
    assert portal.anonymous().post("/api/session", json={"login": "alice", "password": PASSWORD}).status_code == 401
    portal.sign_in("alice", "new-secret")


def test_api_tokens_are_shown_once_listed_by_hint_and_revocable(portal):
    portal.account("alice")
    browser = portal.sign_in("alice")
    made = browser.post("/api/tokens", json={"name": "billing system", "expires_in_days": 30})
    assert made.status_code == 201
    token = made.json["token"]
    api = portal.anonymous()
    assert api.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json["login"] == "alice"
    listed = browser.get("/api/tokens").json["items"]
    assert [(t["name"], t["hint"]) for t in listed] == [("billing system", token[:10])]
    assert token not in browser.get("/api/tokens").text
    assert browser.delete(f"/api/tokens/{made.json['id']}").status_code == 204
    refused = api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert api.get("/api/me", headers={"Authorization": "Basic YWxpY2U6eA=="}).status_code == 401


def test_a_suspended_account_is_signed_out_everywhere_and_cannot_sign_in(portal, db):
    portal.account("alice")
    browser = portal.sign_in("alice")
    api = portal.bearer("alice")
    with transaction(db) as session:
        session.execute(update(Account).values(status=AccountStatus.SUSPENDED))
    assert browser.get("/api/me").status_code == 401
    assert api.get("/api/me").status_code == 401
    refused = portal.anonymous().post("/api/session", json={"login": "alice", "password": PASSWORD})
    assert refused.status_code == 403 and refused.json["detail"] == "this account is suspended"


def test_passwords_and_pins_never_appear_in_responses_or_logs(portal, caplog):
    caplog.set_level(logging.DEBUG)
    portal.account("alice")
    seen = []
    seen.append(portal.anonymous().post("/api/session", json={"login": "alice", "password": "wrong-Pa55"}))
    browser = portal.sign_in("alice")
    seen.append(browser.post("/api/me/pin", json={"password": PASSWORD, "pin": "864201"}))
    seen.append(browser.post("/api/me/pin", json={"password": PASSWORD, "pin": "12ab"}))
    seen.append(browser.post("/api/me/password", json={"current_password": PASSWORD, "new_password": "N3w-Pa55"}))
    seen += [browser.get("/api/me"), browser.get("/api/session")]
    admin = portal.account("root", role="admin")
    assert admin
    root = portal.bearer("root")
    seen.append(root.get("/api/admin/accounts/alice"))
    seen.append(root.get("/api/admin/accounts"))
    for secret in (PASSWORD, "wrong-Pa55", "864201", "N3w-Pa55", "$argon2"):
        assert all(secret not in result.text for result in seen)
        assert secret not in caplog.text
