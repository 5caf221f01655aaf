"""Access-number triggers and SMS ingress through a real Kamailio, with sipp as the carrier.

The demo data makes 127.0.0.1 the trusted carrier and 123333333 the access number (5 s of ringing).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from boomerang import probes, provisioning
from boomerang.store import make_engine, read_only_factory, session_factory, transaction
from boomerang.store.models import CallbackSession, SmsMessage, SmsStatus
from tests.servicekit import ControllerProbe, metric, restart_killed, running_edge, sipp, wait_for

pytestmark = pytest.mark.sip

DEMO_ACCESS = "123333333"
FAST_ACCESS = "123444444"  # rings 1 s
KNOWN_ONLY = "123555555"  # known callers only, rings 1 s
UNTRUSTED_IP = "127.0.0.2"
REPEAT_WINDOW = 4
PER_CALLER_PER_HOUR = 2
PER_SECOND = 6


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    with running_edge(
        tmp_path_factory.mktemp("triggers"),
        triggers_repeat_window_seconds=str(REPEAT_WINDOW),
        triggers_per_caller_per_hour=str(PER_CALLER_PER_HOUR),
        triggers_per_second=str(PER_SECOND),
    ) as settings:
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            for number, known_only in ((FAST_ACCESS, False), (KNOWN_ONLY, True)):
                provisioning.add_access_number(
                    session,
                    provisioning.AccessNumberSpec(number=number, ring_time_seconds=1, known_callers_only=known_only),
                )
            provisioning.add_caller_id(session, "demo", "+447700900999")
        engine.dispose()
        time.sleep(5.5)  # the edge reads access numbers through a 5 s cache
        yield settings


@pytest.fixture
def controller(edge):
    probe = ControllerProbe(edge.controller_evapi_listen)
    yield probe
    probe.close()


def trigger(edge, caller, access=FAST_ACCESS, scenario="trigger.xml", **options):
    return sipp(scenario, edge.sip_listen, "-s", access, "-key", "caller", caller, **options)


def callbacks_for(edge, caller):
    engine = make_engine(edge.database_url)
    try:
        with transaction(read_only_factory(engine)) as session:  # no write lock: works in a stall too
            query = select(CallbackSession).where(CallbackSession.caller_number == caller)
            return list(session.execute(query).scalars())
    finally:
        engine.dispose()


def test_the_caller_hears_ringing_then_busy_and_one_callback_is_requested(edge, controller):
    started = time.monotonic()
    result = trigger(edge, "+447700900101", access=DEMO_ACCESS)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:]  # 180 then 486, never 200
    assert elapsed >= 5.0  # the demo access number's ring time

    requests = controller.wait_for("callback_request")
    assert len(requests) == 1
    request = requests[0]
    assert request["caller"] == "447700900101" and request["access_number"] == DEMO_ACCESS
    [callback] = callbacks_for(edge, "447700900101")
    assert callback.id == request["session_id"] and callback.state == "requested"
    # Called back after the ring time (5 s) and the callback delay (3 s).
    assert callback.due_at - callback.requested_at == pytest.approx(timedelta(seconds=8), abs=timedelta(seconds=1))


def test_a_repeat_within_the_window_gets_no_second_callback(edge, controller):
    assert trigger(edge, "+447700900102").returncode == 0
    assert trigger(edge, "+447700900102").returncode == 0  # rings and is busy like the first
    time.sleep(0.5)
    assert len(controller.of_type("callback_request")) == 1
    assert len(callbacks_for(edge, "447700900102")) == 1

    time.sleep(REPEAT_WINDOW)  # after the window the caller may ask again
    assert trigger(edge, "+447700900102").returncode == 0
    assert len(controller.wait_for("callback_request", 2)) == 2


def test_a_caller_over_the_hourly_limit_is_busy_at_once(edge, controller):
    for _ in range(PER_CALLER_PER_HOUR):
        assert trigger(edge, "+447700900103").returncode == 0
        time.sleep(REPEAT_WINDOW)
    assert trigger(edge, "+447700900103", scenario="trigger_busy_at_once.xml").returncode == 0
    time.sleep(0.5)
    assert len(controller.of_type("callback_request")) == PER_CALLER_PER_HOUR


def test_known_callers_only(edge, controller):
    unknown = trigger(edge, "+447700900104", access=KNOWN_ONLY, scenario="trigger_busy_at_once.xml")
    assert unknown.returncode == 0
    assert trigger(edge, "+447700900999", access=KNOWN_ONLY).returncode == 0  # the demo account's number
    requests = controller.wait_for("callback_request")
    assert [r["caller"] for r in requests] == ["447700900999"]
    assert requests[0]["account_id"] is not None
    assert callbacks_for(edge, "447700900104") == []


def test_the_caller_is_read_from_p_asserted_identity(edge, controller):
    assert trigger(edge, "+447700900105", scenario="trigger_pai.xml").returncode == 0
    assert [r["caller"] for r in controller.wait_for("callback_request")] == ["447700900105"]


def test_a_withheld_number_cannot_be_called_back(edge, controller):
    result = sipp("invite_refused.xml", edge.sip_listen, "-s", FAST_ACCESS, local_ip=UNTRUSTED_IP)
    assert result.returncode == 0  # untrusted: 403 before anything else
    withheld = trigger(edge, "anonymous", scenario="trigger_busy_at_once.xml")
    assert withheld.returncode != 0  # not busy: refused with 433
    assert "433" in withheld.stdout or "Unexpected" in withheld.stdout
    assert controller.of_type("callback_request") == []


def test_hanging_up_while_it_rings_still_gets_the_callback(edge, controller):
    assert trigger(edge, "+447700900106", scenario="trigger_cancel.xml").returncode == 0
    assert len(controller.wait_for("callback_request")) == 1


def test_untrusted_sources_cannot_reach_an_access_number(edge, controller):
    result = sipp("invite_refused.xml", edge.sip_listen, "-s", DEMO_ACCESS, local_ip=UNTRUSTED_IP)
    assert result.returncode == 0
    assert controller.of_type("callback_request") == []


def test_no_relay_for_anyone(edge):
    assert sipp("relay.xml", edge.sip_listen, "-s", "447700900123").returncode == 0  # trusted carrier
    assert sipp("relay.xml", edge.sip_listen, "-s", "447700900123", local_ip=UNTRUSTED_IP).returncode == 0


def test_sms_message_is_stored_once_and_handed_over(edge, controller):
    sms = ("-key", "caller", "+447700900107", "-key", "content_type", "text/plain", "-key", "text", "BAL")
    assert sipp("message.xml", edge.sip_listen, "-s", "1234000000", *sms).returncode == 0
    handed = controller.wait_for("sms_received")
    assert len(handed) == 1 and handed[0]["sender"] == "447700900107"

    engine = make_engine(edge.database_url)
    with transaction(session_factory(engine)) as session:
        stored = session.execute(select(SmsMessage).where(SmsMessage.sender == "447700900107")).scalars().all()
    engine.dispose()
    assert [(m.text.strip(), m.status) for m in stored] == [("BAL", SmsStatus.RECEIVED)]

    assert (
        sipp("message_forbidden.xml", edge.sip_listen, "-s", "1234000000", *sms, local_ip=UNTRUSTED_IP).returncode == 0
    )
    json_body = ("-key", "caller", "+447700900107", "-key", "content_type", "application/json", "-key", "text", "{}")
    assert sipp("message_unsupported.xml", edge.sip_listen, "-s", "1234000000", *json_body).returncode == 0
    time.sleep(0.3)
    assert len(controller.of_type("sms_received")) == 1


def test_metrics_count_what_happened(edge):
    text = _metrics(edge)
    assert 'boomerang_triggers_total{outcome="callback"}' in text
    assert 'boomerang_triggers_total{outcome="repeat"}' in text
    assert 'boomerang_sip_refused_total{reason="untrusted"}' in text
    assert 'boomerang_sip_refused_total{reason="relay"}' in text
    assert "boomerang_sms_received_total" in text
    assert probes.http_get(edge.metrics_listen, "/other") == 404


def test_a_flood_of_triggers_does_not_become_a_flood_of_callbacks(edge, controller):
    time.sleep(2)  # a fresh second for the platform-wide budget
    callers = [f"+4477009002{i:02d}" for i in range(30)]
    started = time.monotonic()
    for caller in callers:
        trigger(edge, caller, scenario="trigger_busy_at_once.xml", timeout=5)  # either outcome is fine here
    elapsed = time.monotonic() - started
    time.sleep(1.5)
    granted = len(controller.of_type("callback_request"))
    assert 0 < granted <= PER_SECOND * (int(elapsed) + 2)
    assert granted < len(callers)
    assert 'boomerang_triggers_total{outcome="platform_limit"}' in _metrics(edge)


class KeepaliveProbe:
    """A load balancer's health check: OPTIONS every half second, each answer's code (None: none
    within 2 s, the time after which a health check takes the node out of service)."""

    def __init__(self, edge) -> None:
        self.answers: list[int | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(edge,), daemon=True)
        self._thread.start()

    def _run(self, edge) -> None:
        while not self._stop.wait(0.5):
            self.answers.append(probes.sip_options(edge.sip_listen, timeout=2.0))

    def stop(self) -> list[int | None]:
        self._stop.set()
        self._thread.join()
        return self.answers


def stalled_database(edge) -> sqlite3.Connection:
    """Another process takes SQLite's write lock and keeps it (until ROLLBACK)."""
    stall = sqlite3.connect(edge.database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    stall.execute("BEGIN EXCLUSIVE")
    return stall


def each_promise_kept(edge, controller, callers: list[str], answers: list[int | None], stalled_seconds: int) -> None:
    """After a stall: every keepalive probe of it was answered (two a second), and each callback
    promised during it reached the controller and is recorded, once."""
    assert len(answers) > stalled_seconds and set(answers) == {200}, answers
    requests = controller.wait_for("callback_request", len(callers), timeout=10)
    assert sorted(request["caller"] for request in requests) == callers
    for caller in callers:
        assert len(callbacks_for(edge, caller)) == 1


def test_while_the_database_is_stalled_the_edge_answers_and_every_promised_callback_is_kept(edge, controller):
    """The write lock is held 40 s, longer than any writer waits for it (30 s): OPTIONS are answered
    throughout, each trigger gets the ringing and busy that promise a callback, and once the lock is
    gone each promised callback is recorded, once."""
    time.sleep(2)  # a fresh second for the platform-wide budget
    callers = ["447700900301", "447700900302", "447700900303"]
    stall = stalled_database(edge)
    stalled_at = time.monotonic()
    keepalive = KeepaliveProbe(edge)
    try:
        for caller in callers:
            assert trigger(edge, "+" + caller).returncode == 0  # 180, then 486: promised
        # kept, not yet recorded (the drain says so each time it tries the database)
        assert wait_for(lambda: metric(edge, "boomerang_triggers_spooled") == len(callers), timeout=5)
        time.sleep(max(40 - (time.monotonic() - stalled_at), 0))
        assert controller.of_type("callback_request") == []
        assert all(callbacks_for(edge, caller) == [] for caller in callers)
    finally:
        stall.execute("ROLLBACK")
        stall.close()
        answers = keepalive.stop()
    each_promise_kept(edge, controller, callers, answers, stalled_seconds=40)
    assert wait_for(lambda: metric(edge, "boomerang_triggers_spooled") == 0, timeout=5)


def test_callbacks_promised_while_the_database_is_stalled_survive_a_kamailio_restart(edge, controller):
    stall = stalled_database(edge)
    try:
        assert trigger(edge, "+447700900311").returncode == 0
        restart_killed(edge, "kamailio")  # kill -9, and started again
        assert wait_for(lambda: probes.sip_options(edge.sip_listen, timeout=0.5) == 200, timeout=10)
    finally:
        stall.execute("ROLLBACK")
        stall.close()
    wait_for(lambda: callbacks_for(edge, "447700900311"), timeout=10)
    [callback] = callbacks_for(edge, "447700900311")
    assert callback.state == "requested"


@pytest.mark.mariadb
def test_on_mariadb_a_locked_server_keeps_no_promised_callback_from_being_recorded(tmp_path_factory):
    """Every write on the server is held (FLUSH TABLES WITH READ LOCK) for 35 s during triggers:
    OPTIONS are answered throughout and each promised callback is recorded once the lock is gone."""
    from tests.conftest import mariadb_database

    folder = tmp_path_factory.mktemp("triggers-mariadb")
    databases = mariadb_database()
    url = next(databases)
    try:
        with running_edge(folder, database_url=url) as edge:
            probe = ControllerProbe(edge.controller_evapi_listen)
            server = make_engine(url).raw_connection()
            callers = ["447700900321", "447700900322"]
            keepalive = KeepaliveProbe(edge)
            try:
                server.cursor().execute("FLUSH TABLES WITH READ LOCK")
                locked_at = time.monotonic()
                for caller in callers:
                    assert trigger(edge, "+" + caller, access=DEMO_ACCESS).returncode == 0  # promised
                assert wait_for(lambda: metric(edge, "boomerang_triggers_spooled") == len(callers), timeout=5)
                time.sleep(max(35 - (time.monotonic() - locked_at), 0))
                assert probe.of_type("callback_request") == []
            finally:
                server.cursor().execute("UNLOCK TABLES")
                server.close()
                answers = keepalive.stop()
            each_promise_kept(edge, probe, callers, answers, stalled_seconds=35)
            probe.close()
    finally:
        databases.close()


def _metrics(edge) -> str:
    import http.client

    connection = http.client.HTTPConnection(edge.metrics_listen.host, edge.metrics_listen.port, timeout=5)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    return response.read().decode()
