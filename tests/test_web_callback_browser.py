"""The web callback page in a real browser (Debian's Chromium, driven by Playwright) against the
whole platform as `boomerang run` starts it: sign in, enter two numbers, press Call, and watch each
leg's status change live until the call ends with its cost."""

from __future__ import annotations

import io
import time

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import update

from boomerang import provisioning, services
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import Gateway
from boomerang.supervisor import Supervisor
from tests.portalkit import PASSWORD
from tests.servicekit import GatewaySim, free_port, running_edge

pytestmark = pytest.mark.sip

CHROMIUM = "/usr/bin/chromium"

# Every status shown in the legs' table, in the order the page showed them.
RECORD_STATUSES = """
window.seen = [];
const observer = new MutationObserver(() => {
  for (const name of ["A", "B"]) {
    const text = document.querySelector("#leg-" + name + " .status").textContent;
    const last = window.seen.filter(([leg]) => leg === name).pop();
    if (!last || last[1] !== text) window.seen.push([name, text]);
  }
});
observer.observe(document.getElementById("status"), {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_edge(tmp_path_factory.mktemp("browser")) as settings:
        port = free_port()
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            session.execute(update(Gateway).where(Gateway.name == "carrier").values(uri=f"sip:127.0.0.1:{port}"))
            provisioning.create_account(session, provisioning.AccountSpec(login="carol", currency="USD", tariff="demo"))
            provisioning.set_password(session, "carol", PASSWORD)
            provisioning.top_up(session, "carol", provisioning.parse_amount("5"), reference="carol:opening")
        time.sleep(5.5)  # the edge's gateway cache
        others = Supervisor(settings, out=io.StringIO())
        others.start(services.controller(settings))
        others.start(services.portal(settings))
        try:
            yield settings, port
        finally:
            others.stop_all()
            engine.dispose()


def test_sign_in_call_two_numbers_and_watch_both_legs_live(platform, tmp_path):
    settings, port = platform
    carrier = GatewaySim("gw_connect_two.xml", port, tmp_path, 60, calls=2)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(
                base_url=f"http://{settings.portal_listen}", viewport={"width": 390, "height": 844}
            )
            signed_in = context.request.post("/api/session", data={"login": "carol", "password": PASSWORD})
            assert signed_in.status == 201, signed_in.text()
            page = context.new_page()
            page.goto("/callback")
            page.evaluate(RECORD_STATUSES)
            page.fill("input[name=a]", "+44 7700 900601")
            page.fill("input[name=b]", "+1 202 555 0601")
            page.click("button[type=submit]")
            page.wait_for_selector("#outcome:has-text('Ended')", timeout=40_000)
            seen = page.evaluate("window.seen")
            outcome = page.text_content("#outcome")
            costs = [page.text_content(f"#leg-{name} .cost") for name in ("A", "B")]
            page.screenshot(path=str(tmp_path / "web-callback.png"))
        finally:
            browser.close()
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]
    shown = [f"{leg} {text}" for leg, text in seen]
    wanted = ["A ringing", "A answered", "B ringing", "B answered"]
    positions = [next(i for i, entry in enumerate(shown) if entry.startswith(step)) for step in wanted]
    assert positions == sorted(positions), shown  # in that order
    assert shown[-1].endswith("ended") or "ended" in shown[-2], shown
    assert outcome.startswith("Ended: completed, cost ")
    assert all(cost.endswith(" USD") for cost in costs), costs
