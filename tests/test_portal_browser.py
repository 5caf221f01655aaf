"""The portal in a real browser (Debian's Chromium driven by Playwright, no downloaded browser): sign
in, add a caller ID and see it listed, see the call history."""

from __future__ import annotations

import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.portalkit import PASSWORD, Portal

CHROMIUM = "/usr/bin/chromium"


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # the test's output stays readable
        pass


@pytest.fixture
def served(tmp_path):
    from boomerang.store import make_engine, migrate, session_factory
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'portal.db'}")
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    portal = Portal(settings, session_factory(engine))
    server = make_server("127.0.0.1", 0, portal.app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield portal, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        engine.dispose()


def test_sign_in_add_a_caller_id_and_see_the_history(served, tmp_path):
    portal, base = served
    alice = portal.account("alice", balance="10")
    portal.call(alice, destination="447700900123")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.goto(f"{base}/caller-ids")
        expect(page).to_have_url(f"{base}/login?next=%2Fcaller-ids")
        page.get_by_label("Login").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{base}/caller-ids")

        page.get_by_label("Number").fill("+44 7700 900555")
        page.get_by_role("button", name="Add").click()
        expect(page.get_by_role("status")).to_have_text("Added.")
        expect(page.locator("#caller-ids")).to_contain_text("+447700900555")

        page.get_by_role("link", name="History").click()
        expect(page.locator("table")).to_contain_text("+447700900123")
        expect(page.locator("table")).to_contain_text("United Kingdom")
        expect(page.locator("table")).to_contain_text("0.20")
        page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
        browser.close()
