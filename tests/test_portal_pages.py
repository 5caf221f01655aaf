"""The HTML pages: sign-in form, customer and administrator forms with their form tokens."""

from __future__ import annotations

import re

import pytest

from boomerang.store.models import Role
from tests.portalkit import PASSWORD, Portal

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def portal(migrated, db) -> Portal:
    return Portal(migrated, db)


def _sign_in_by_form(portal: Portal, login: str, next_page: str = "") -> dict:
    form = portal.client.simulate_get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    body = f"login={login}&password={PASSWORD.replace(' ', '+')}&login_token={token}&next={next_page}"
    done = portal.client.simulate_post("/login", body=body, headers=FORM, cookies={"boomerang_login_csrf": token})
    assert done.status_code == 303, done.text
    return {
        "location": done.headers["location"],
        "cookies": {"boomerang_session": done.cookies["boomerang_session"].value},
    }


def _csrf(page_text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def test_pages_need_sign_in_and_are_readable_on_a_phone(portal):
    anonymous = portal.client.simulate_get("/history")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=%2Fhistory"
    login = portal.client.simulate_get("/login")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in login.text
    assert portal.client.simulate_get("/static/portal.css").status_code == 200


def test_the_sign_in_form_needs_its_own_token_and_goes_back_where_it_was_asked(portal):
    portal.account("alice")
    forged = portal.client.simulate_post("/login", body=f"login=alice&password={PASSWORD}&login_token=x", headers=FORM)
    assert forged.status_code == 403 and "boomerang_session" not in forged.cookies
    signed = _sign_in_by_form(portal, "alice", "/history")
    assert signed["location"] == "/history"
    assert _sign_in_by_form(portal, "alice", "//evil.example/")["location"] == "/dashboard"
    wrong = portal.client.simulate_get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', wrong.text).group(1)
    refused = portal.client.simulate_post(
        "/login",
        body=f"login=alice&password=nope&login_token={token}",
        headers=FORM,
        cookies={"boomerang_login_csrf": token},
    )
    assert refused.status_code == 401 and "The login or password is wrong." in refused.text


def test_a_customer_adds_and_removes_a_caller_id_with_the_form(portal):
    portal.account("alice")
    cookies = _sign_in_by_form(portal, "alice")["cookies"]
    page = portal.client.simulate_get("/caller-ids", cookies=cookies)
    token = _csrf(page.text)
    no_token = portal.client.simulate_post("/caller-ids", body="number=%2B447700900555", headers=FORM, cookies=cookies)
    assert no_token.status_code == 403
    added = portal.client.simulate_post(
        "/caller-ids", body=f"number=%2B447700900555&csrf_token={token}", headers=FORM, cookies=cookies
    )
    assert added.status_code == 303 and added.headers["location"] == "/caller-ids?notice=added"
    listed = portal.client.simulate_get("/caller-ids?notice=added", cookies=cookies).text
    assert "+447700900555" in listed and "Added." in listed
    bad = portal.client.simulate_post(
        "/caller-ids", body=f"number=07700&csrf_token={token}", headers=FORM, cookies=cookies
    )
    assert bad.status_code == 400 and "international format" in bad.text
    removed = portal.client.simulate_post(
        "/caller-ids/remove", body=f"number=447700900555&csrf_token={token}", headers=FORM, cookies=cookies
    )
    assert removed.status_code == 303
    assert "+447700900555" not in portal.client.simulate_get("/caller-ids", cookies=cookies).text


def test_an_administrator_tops_up_an_account_from_its_page(portal):
    portal.account("root", role=Role.ADMIN)
    portal.account("alice")
    cookies = _sign_in_by_form(portal, "root")["cookies"]
    page = portal.client.simulate_get("/admin/accounts/alice", cookies=cookies)
    token = _csrf(page.text)
    posted = portal.client.simulate_post(
        "/admin/accounts/alice/ledger",
        body=f"kind=topup&amount=12.50&reason=invoice+7&csrf_token={token}",
        headers=FORM,
        cookies=cookies,
    )
    assert posted.status_code == 303
    shown = portal.client.simulate_get("/admin/accounts/alice", cookies=cookies).text
    assert "12.50 USD" in shown and "invoice 7" in shown
    customer = _sign_in_by_form(portal, "alice")["cookies"]
    assert portal.client.simulate_get("/admin/accounts/alice", cookies=customer).status_code == 403
