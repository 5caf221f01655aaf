"""Web callback status latency: from a carrier's SIP reply reaching Kamailio to the status showing
in the browser.

The whole platform runs as `make run` runs it (SQLite); the portal is served by gunicorn. Debian's
Chromium (Playwright) signs in, opens the web callback page and starts CALLS connect-two calls one
after the other; the carrier (sipp) rings and answers A, then rings and answers B, which hangs up
after 2 s. tcpdump on lo times each 180 and 200 as it reaches Kamailio; the page records when each
status event arrives (Date.now(), the same clock). The figure is the median over every status.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from sqlalchemy import select, update

from benchmarks import wire
from boomerang import provisioning, services
from boomerang.settings import load
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import Gateway, LegEvent, LegStatus
from boomerang.supervisor import Supervisor, prepare_database
from tests.servicekit import GatewaySim, free_port

CALLS = 10
PASSWORD = "benchmark password"
TARGET_MS = 250
CHROMIUM = "/usr/bin/chromium"

RECORD_EVENTS = """
window.arrivals = [];
const original = window.EventSource;
window.EventSource = function (url) {
  const source = new original(url);
  source.addEventListener("leg", (message) => {
    const event = JSON.parse(message.data);
    window.arrivals.push([Date.now() / 1000, event.leg, event.status]);
  });
  return source;
};
"""


def _platform(directory: Path, carrier_port: int):
    environ = {
        "BOOMERANG_DATABASE_URL": f"sqlite:///{directory / 'bench.db'}",
        "BOOMERANG_PATHS_VAR_DIR": str(directory / "var"),
        "BOOMERANG_SIP_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_RTPENGINE_NG_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_RTPENGINE_NG_TCP_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_CONTROLLER_EVAPI_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_PORTAL_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_CARRIER_DEFAULT_GATEWAY": f"sip:127.0.0.1:{carrier_port}",
        "BOOMERANG_LOG_LEVEL": "warning",
    }
    settings = load(environ)
    supervisor = Supervisor(settings, out=io.StringIO())
    supervisor.prepare_directories()
    prepare_database(settings, io.StringIO())
    engine = make_engine(settings.database_url)
    with transaction(session_factory(engine)) as session:
        session.execute(update(Gateway).where(Gateway.name == "carrier").values(uri=f"sip:127.0.0.1:{carrier_port}"))
        provisioning.create_account(session, provisioning.AccountSpec(login="bench", currency="USD", tariff="demo"))
        provisioning.set_password(session, "bench", PASSWORD)
        provisioning.top_up(session, "bench", provisioning.parse_amount("100"), reference="bench:opening")
    engine.dispose()
    for service in services.all_services(settings):
        supervisor.start(service)
    return settings, supervisor


def _replies(capture: Path, carrier_port: int) -> list[tuple[float, str]]:
    """(time, "180" or "200") of every carrier reply to an INVITE, in order."""
    found = []
    for datagram in wire.datagrams(capture):
        if datagram.source_port != carrier_port:
            continue
        message = wire.sip(datagram.payload)
        if message is None or "INVITE" not in message.headers.get("cseq", ""):
            continue
        for code in ("180", "200"):
            if message.first_line.startswith(f"SIP/2.0 {code}"):
                found.append((datagram.at, code, message.call_id))
    # A 200 is retransmitted until the ACK: the first one counts.
    first: dict[tuple[str, str], float] = {}
    for at, code, call_id in found:
        first.setdefault((call_id, code), at)
    return sorted((at, code) for (_, code), at in first.items())


def main(context) -> None:
    carrier_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        directory = Path(tmp)
        settings, supervisor = _platform(directory, carrier_port)
        capture = directory / "replies.pcap"
        arrivals = []
        try:
            with wire.capture(capture, [carrier_port], []), sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page_context = browser.new_context(base_url=f"http://{settings.portal_listen}")
                assert page_context.request.post("/api/session", data={"login": "bench", "password": PASSWORD}).ok
                page = page_context.new_page()
                page.add_init_script(RECORD_EVENTS)
                for call in range(CALLS):
                    carrier = GatewaySim(Path("gw_connect_two.xml"), carrier_port, directory, 40, calls=2)
                    page.goto("/callback")
                    page.fill("input[name=a]", f"+44770090{call:04d}")
                    page.fill("input[name=b]", f"+120255{call:05d}")
                    page.click("button[type=submit]")
                    page.wait_for_selector("#outcome:has-text('Ended')", timeout=40_000)
                    arrivals += page.evaluate("window.arrivals")
                    carrier.finish()
                    time.sleep(0.5)
                browser.close()
        finally:
            supervisor.stop_all()
        replies = _replies(capture, carrier_port)
        recorded = _recorded(settings.database_url)
    shown = [(at, status) for at, _, status in arrivals if status in ("ringing", "answered")]  # as they came
    # Each call's replies, in order: A 180, A 200, B 180, B 200; the statuses follow in the same order.
    expected = [STATUS_OF[code] for _, code in replies]
    if [status for _, status in shown] != expected or [status for _, status in recorded] != expected:
        print(f"  the statuses do not match the replies: {len(replies)} replies, {len(shown)} shown, {len(recorded)}")
        return
    to_database = [1000 * (at - replied) for (replied, _), (at, _) in zip(replies, recorded, strict=True)]
    to_browser = [1000 * (seen - replied) for (replied, _), (seen, _) in zip(replies, shown, strict=True)]
    print(
        f"web callback status latency, {len(to_browser)} statuses (ringing, answered) of {CALLS} calls, from the "
        f"SIP reply at Kamailio:\n"
        f"  to the status in the browser: {_figures(to_browser)} (target: median under {TARGET_MS} ms)\n"
        f"  baseline, to the status written by the call controller: {_figures(to_database)}"
    )


STATUS_OF = {"180": "ringing", "200": "answered"}


def _figures(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.0f} ms, p90 {statistics.quantiles(values, n=10)[-1]:.0f} ms, "
        f"max {max(values):.0f} ms"
    )


def _recorded(url: str) -> list[tuple[float, str]]:
    """(time, status) of every ringing and answered status the call controller wrote."""
    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        rows = session.execute(
            select(LegEvent.at, LegEvent.status)
            .where(LegEvent.status.in_([LegStatus.RINGING, LegStatus.ANSWERED]))
            .order_by(LegEvent.id)  # as written
        ).all()
    engine.dispose()
    return [(at.timestamp(), status.value) for at, status in rows]
