"""Credit control on the running platform, on SQLite and MariaDB: many callbacks of one account at
once never overdraw it, every leg is billed for its wire time, a leg cut for credit leaves on time,
the per-account call limit holds, and a leg interrupted by an outage is billed no further than it
talked before it. Real Kamailio, rtpengine, call controller and portal (gunicorn); sipp plays the
phones and the carriers, and its message traces are the wire.

Demo tariff: 44 (UK) 0.10/min billed 60/60; 1 (US) 0.05/min billed 30/6. A callback from a UK phone
to a US number reserves 0.10 (leg A's first minute) + 0.025 (leg B's first 30 s) before anything is
dialled: 1.00 USD pays for 8 of them.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from boomerang import provisioning, services
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import (
    Account,
    CallbackSession,
    CallLeg,
    Cdr,
    Reservation,
    Tariff,
)
from boomerang.store.types import utcnow
from boomerang.supervisor import Supervisor
from callback.store import CallbackStore
from rating.tariff_cache import load_index
from tests.conftest import mariadb_database
from tests.portalkit import Portal
from tests.servicekit import (
    SIPP_DIR,
    GatewaySim,
    forget_media_state,
    free_port,
    invites,
    metric,
    phone_scenario,
    restart_killed,
    rtpengine_request,
    running_edge,
    two_carriers,
    wait_for,
    wire,
)

pytestmark = pytest.mark.sip

ACCESS = "123555555"  # rings 1 s, calls back 3 s after the busy, does not announce the balance
CALLS = 50
AFFORDABLE = 8  # 1.00 / (0.10 + 0.025)
US_DESTINATION = "12025550143"


@dataclass
class Platform:
    settings: object
    db: object
    ports: dict
    supervisor: Supervisor
    portal: Portal


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def platform(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"credit-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{folder / 'credit.db'}"
        else:
            databases = mariadb_database()
            url = next(databases)
            stack.callback(databases.close)
        settings = stack.enter_context(
            running_edge(
                folder,
                database_url=url,
                triggers_per_second="500",
                portal_workers="4",
                rtpengine_silence_timeout_seconds="600",
            )  # the carriers here send no RTP
        )
        ports = {"phone": free_port(), "destination": free_port()}
        engine = make_engine(settings.database_url)
        stack.callback(engine.dispose)
        db = session_factory(engine)
        with transaction(db) as session:
            two_carriers(session, ports["phone"], ports["destination"])
            provisioning.add_access_number(
                session,
                provisioning.AccessNumberSpec(
                    number=ACCESS, ring_time_seconds=1, callback_delay_seconds=3, announce_balance=False
                ),
            )
        time.sleep(5.5)  # the edge's 5 s cache of gateways and access numbers
        supervisor = Supervisor(settings, out=io.StringIO())
        stack.callback(supervisor.stop_all)
        supervisor.start(services.controller(settings))
        supervisor.start(services.portal(settings))
        yield Platform(settings, db, ports, supervisor, Portal(settings, db))


def account(platform: Platform, login: str, balance: str = "1.00", max_calls: int = 100) -> int:
    with transaction(platform.db) as session:
        spec = provisioning.AccountSpec(login=login, currency="USD", tariff="demo", max_concurrent_calls=max_calls)
        account_id = provisioning.create_account(session, spec).id
        provisioning.set_password(session, login, "correct horse battery")
        provisioning.top_up(session, login, Decimal(balance), reference=f"opening:{login}")
    return account_id


class BalanceWatch:
    """Reads the account's balance every 0.25 s, as an operator's dashboard would."""

    def __init__(self, platform: Platform, account_id: int) -> None:
        self.db, self.account_id = platform.db, account_id
        self.lowest: Decimal | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            with transaction(self.db) as session:
                balance = session.execute(select(Account.balance).where(Account.id == self.account_id)).scalar_one()
            self.lowest = balance if self.lowest is None else min(self.lowest, balance)

    def stop(self) -> Decimal:
        self._stop.set()
        self._thread.join(5)
        return self.lowest


def api(platform: Platform, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://{platform.settings.portal_listen}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def at_once(platform: Platform, token: str, a_prefix: str) -> list[tuple[int, dict]]:
    """CALLS web callbacks asked for at the same moment, from CALLS numbers to one US number."""

    def ask(n: int) -> tuple[int, dict]:
        return api(platform, "POST", "/api/callbacks", token, {"a": f"+{a_prefix}{n:02d}", "b": f"+{US_DESTINATION}"})

    with ThreadPoolExecutor(CALLS) as pool:
        return list(pool.map(ask, range(CALLS)))


def token_of(platform: Platform, login: str) -> str:
    return platform.portal.bearer(login, "correct horse battery").headers["Authorization"].split()[1]


def check_billing_on_the_wire(platform: Platform, account_id: int, traces: list[Path]) -> list[Cdr]:
    """Every CDR of the account: billed its wire time rounded up to the increment, its end the BYE's
    moment; every leg of a call cut for credit left within 1 s of the end of its grant."""
    on_wire = {}
    for trace in traces:
        on_wire |= wire(trace)
    with transaction(platform.db) as session:
        cdrs = list(session.execute(select(Cdr).where(Cdr.account_id == account_id)).scalars())
        legs = {leg.id: leg for leg in session.execute(select(CallLeg).where(CallLeg.id.in_([c.leg_id for c in cdrs])))
                .scalars()}  # fmt: skip
        grants = dict(session.execute(select(Reservation.leg_id, Reservation.granted_seconds)).all())
        tariff = session.execute(select(Tariff.id).where(Tariff.name == "demo")).scalar_one()
        prices = load_index(session, tariff)
    calls: dict[str, list[Cdr]] = {}
    for cdr in cdrs:
        calls.setdefault(cdr.session_id, []).append(cdr)
        seen = on_wire[legs[cdr.leg_id].sip_call_id]
        assert seen.bye is not None, f"leg {cdr.leg_id} never got a BYE"
        talked = (seen.bye - seen.answered).total_seconds()
        price = prices.lookup(cdr.number, cdr.answer_time).price
        assert cdr.billed_seconds == price.billed_seconds(int(talked)), (cdr.role, talked, cdr.billed_seconds)
        assert abs((cdr.end_time - seen.bye).total_seconds()) <= 1.0
        assert abs(cdr.duration_seconds - talked) <= 1.0
    for call in calls.values():  # the legs of a call end together, when its credit does
        ends = [on_wire[legs[c.leg_id].sip_call_id] for c in call]
        grant_end = min(seen.answered + timedelta(seconds=grants[c.leg_id]) for c, seen in zip(call, ends, strict=True))
        for seen in ends:
            assert abs((seen.bye - grant_end).total_seconds()) <= 1.0, (seen, grant_end)
    return cdrs


def settled_balance(platform: Platform, account_id: int) -> Decimal:
    with transaction(platform.db) as session:
        return session.execute(select(Account.balance).where(Account.id == account_id)).scalar_one()


def sessions_of(platform: Platform, account_id: int) -> list[CallbackSession]:
    with transaction(platform.db) as session:
        return list(session.execute(select(CallbackSession).where(CallbackSession.account_id == account_id)).scalars())


def all_over(platform: Platform, account_id: int):
    found = sessions_of(platform, account_id)
    return found if found and all(s.state in ("ended", "failed") for s in found) else None


def bridged_calls(platform: Platform, account_id: int) -> int:
    with transaction(platform.db) as session:
        return session.execute(
            select(func.count())
            .select_from(CallLeg)
            .join(CallbackSession, CallbackSession.id == CallLeg.session_id)
            .where(CallbackSession.account_id == account_id, CallLeg.role == "B", CallLeg.answered_at.is_not(None))
        ).scalar_one()


# --- many calls of one account at once ------------------------------------------------------------


def test_fifty_web_callbacks_at_once_connect_what_one_dollar_pays_and_refuse_the_rest(platform, tmp_path):
    login = f"web{free_port()}"
    account_id = account(platform, login)
    token = token_of(platform, login)
    carrier = GatewaySim("gw_answer_long.xml", platform.ports["destination"], tmp_path, 150, calls=2 * CALLS)
    watch = BalanceWatch(platform, account_id)
    try:
        answers = at_once(platform, token, "4477009007")
        accepted = [body for code, body in answers if code == 201]
        refused = [body for code, body in answers if code != 201]
        assert len(accepted) == AFFORDABLE, refused[:3]
        assert {body.get("code") for body in refused} == {"insufficient_credit"}  # before anything was dialled
        assert wait_for(lambda: all_over(platform, account_id), timeout=120)
    finally:
        lowest = watch.stop()
        carrier.stop()
    assert lowest is not None and lowest >= 0
    assert invites(carrier.trace) == 2 * AFFORDABLE  # nobody else was called
    assert bridged_calls(platform, account_id) == AFFORDABLE
    cdrs = check_billing_on_the_wire(platform, account_id, [carrier.trace])
    assert len(cdrs) == 2 * AFFORDABLE
    assert settled_balance(platform, account_id) == Decimal("1.00") - sum(c.cost for c in cdrs) >= 0


def test_fifty_regular_callbacks_at_once_connect_what_one_dollar_pays_and_refuse_the_rest(platform, tmp_path):
    login = f"ani{free_port()}"
    account_id = account(platform, login)
    callers = [f"4477009008{n:02d}" for n in range(CALLS)]
    with transaction(platform.db) as session:
        for caller in callers:
            provisioning.add_caller_id(session, login, "+" + caller)
    # Each phone keys the destination (RFC 4733) while the platform speaks; the destinations answer
    # and never hang up.
    keys = f"00{US_DESTINATION}#"
    phones = GatewaySim(phone_scenario(tmp_path, keys, wait_ms=1500, gap_ms=150), platform.ports["phone"], tmp_path,
                        150, calls=CALLS)  # fmt: skip
    destinations = GatewaySim("gw_answer_long.xml", platform.ports["destination"], tmp_path, 150, calls=CALLS)
    callers_file = tmp_path / "callers.csv"
    callers_file.write_text("SEQUENTIAL\n" + "".join(f"{caller};\n" for caller in callers))
    watch = BalanceWatch(platform, account_id)
    try:
        triggered = trigger_all(platform, callers_file, tmp_path)
        assert triggered.returncode == 0, triggered.stdout[-2000:]
        assert wait_for(lambda: len(sessions_of(platform, account_id)) == CALLS, timeout=20)
        assert wait_for(lambda: all_over(platform, account_id), timeout=150)
    finally:
        lowest = watch.stop()
        phones.stop()
        destinations.stop()
    assert lowest is not None and lowest >= 0
    assert invites(phones.trace) == AFFORDABLE  # the others were not called back: refused before dialling
    assert bridged_calls(platform, account_id) == AFFORDABLE
    refusals = [s.end_reason for s in sessions_of(platform, account_id) if s.end_reason != "out of credit"]
    assert set(refusals) == {"refused: insufficient_credit"} and len(refusals) == CALLS - AFFORDABLE
    cdrs = check_billing_on_the_wire(platform, account_id, [phones.trace, destinations.trace])
    assert len(cdrs) == 2 * AFFORDABLE
    assert settled_balance(platform, account_id) == Decimal("1.00") - sum(c.cost for c in cdrs) >= 0


def trigger_all(platform: Platform, callers_file: Path, workdir: Path):
    """All the callers dial the access number within a second (ringing, busy)."""
    scenario = workdir / "trigger_from_file.xml"
    scenario.write_text((SIPP_DIR / "trigger.xml").read_text().replace("[caller]", "[field0]"))
    target = platform.settings.sip_listen
    return subprocess.run(
        ["sipp", f"{target.host}:{target.port}", "-sf", str(scenario), "-inf", str(callers_file), "-s", ACCESS,
         "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(CALLS), "-r", str(CALLS), "-l", str(CALLS),
         "-timeout", "30s", "-nostdin"],
        capture_output=True, text=True, timeout=40,
    )  # fmt: skip


def test_the_limit_of_concurrent_calls_holds_against_fifty_requests_at_once(platform, tmp_path):
    login = f"two{free_port()}"
    account_id = account(platform, login, balance="50.00", max_calls=2)
    token = token_of(platform, login)
    ringing = GatewaySim("gw_ring_until_cancel.xml", platform.ports["destination"], tmp_path, 30, calls=2)
    try:
        answers = at_once(platform, token, "4477009009")
        accepted = [body for code, body in answers if code == 201]
        assert len(accepted) == 2
        assert {body.get("code") for code, body in answers if code != 201} == {"too_many"}
        for body in accepted:  # stopped, placed or not
            assert api(platform, "DELETE", f"/api/callbacks/{body['id']}", token)[0] == 202
        assert wait_for(lambda: all_over(platform, account_id), timeout=30)
    finally:
        ringing.stop()


# --- an outage -----------------------------------------------------------------------------------


def bridged_web_call(platform: Platform, tmp_path: Path, balance: str, a: str, seconds: int) -> tuple[int, GatewaySim]:
    """A new account with `balance` connects `a` to the US destination by web callback; returns once
    both legs are bridged: the account, and the carrier answering both legs (for `seconds` at most)."""
    login = f"call{free_port()}"
    account_id = account(platform, login, balance=balance)
    token = token_of(platform, login)
    carrier = GatewaySim("gw_answer_long.xml", platform.ports["destination"], tmp_path, seconds, calls=2)
    code, body = api(platform, "POST", "/api/callbacks", token, {"a": a, "b": f"+{US_DESTINATION}"})
    assert code == 201, body
    assert wait_for(lambda: bridged_calls(platform, account_id) == 1, timeout=30)
    return account_id, carrier


def test_a_leg_interrupted_by_an_outage_is_billed_what_it_talked_before_it(platform, tmp_path):
    account_id, carrier = bridged_web_call(platform, tmp_path, "5.00", "+447700900999", 200)
    time.sleep(8)  # they talk
    killed: list[datetime] = []

    def ten_minutes_later() -> None:  # the platform comes back, and settles what was interrupted
        killed.append(utcnow())
        store = CallbackStore(platform.settings)
        try:
            store.recover(killed[0] + timedelta(minutes=10))
        finally:
            store.close()

    # kill -9: no chance to hang up or bill
    restart_killed(platform.settings, "controller", meanwhile=ten_minutes_later, supervisor=platform.supervisor)
    [killed_at] = killed
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]  # both legs were hung up (Kamailio's deadline: their grant)
    with transaction(platform.db) as session:
        cdrs = list(session.execute(select(Cdr).where(Cdr.account_id == account_id)).scalars())
        grants = dict(session.execute(select(Reservation.leg_id, Reservation.granted_seconds)).all())
    assert len(cdrs) == 2
    for cdr in cdrs:
        talked_before = (killed_at - cdr.answer_time).total_seconds()
        assert 5 <= cdr.duration_seconds <= talked_before
        assert cdr.duration_seconds <= grants[cdr.leg_id]
    on_wire = wire(carrier.trace)
    with transaction(platform.db) as session:
        call_ids = dict(session.execute(select(CallLeg.sip_call_id, CallLeg.id).where(CallLeg.id.in_(grants))).all())
    for call_id, seen in on_wire.items():  # the dead controller left no call running past its grant
        granted = grants[call_ids[call_id]]
        assert seen.bye is not None and (seen.bye - seen.answered).total_seconds() <= granted + 2


def test_a_bridged_call_survives_a_controller_restart_and_is_billed_to_its_end(platform, tmp_path):
    """kill -9 of the controller during a bridged call: the restarted controller takes the call back,
    keeps its credit (extends it, then cuts it when the balance is spent) and bills it on the wire."""
    # 0.40 USD: 120 s of this call, in more than one chunk
    account_id, carrier = bridged_web_call(platform, tmp_path, "0.40", "+447700900998", 240)
    time.sleep(3)
    with transaction(platform.db) as session:
        granted_before = dict(session.execute(select(Reservation.leg_id, Reservation.granted_seconds)).all())
    restart_killed(platform.settings, "controller", supervisor=platform.supervisor)
    try:  # the new controller runs the call, and the metrics say so
        assert wait_for(lambda: metric(platform.settings, "boomerang_controller_sessions") == 1, timeout=20)
        # rtpengine holds its media alone: what earlier calls of this module left is deleted
        assert wait_for(lambda: metric(platform.settings, "boomerang_media_calls") == 1, timeout=20)
        assert wait_for(lambda: all_over(platform, account_id), timeout=180)
    finally:
        carrier.stop()
    [ended] = sessions_of(platform, account_id)
    assert ended.end_reason == "out of credit"
    cdrs = check_billing_on_the_wire(platform, account_id, [carrier.trace])  # billed to the BYE, together
    assert len(cdrs) == 2
    for cdr in cdrs:  # talked on past the credit it held when the controller died: it was extended
        assert cdr.duration_seconds > granted_before[cdr.leg_id] + 10, (cdr.role, granted_before)
    assert settled_balance(platform, account_id) >= 0


@pytest.mark.parametrize("controller_first", [False, True], ids=["kamailio", "controller-then-kamailio"])
def test_a_bridged_call_survives_a_kamailio_restart_and_is_hung_up_at_both_ends(platform, tmp_path, controller_first):
    """kill -9 of Kamailio during a bridged call (after one of the controller, which took the call
    back): the controller teaches the restarted Kamailio the legs it has up, from the dialogs the
    database keeps, so its hang-up at the end of the credit reaches both ends, billed on the wire."""
    account_id, carrier = bridged_web_call(platform, tmp_path, "0.20", "+447700900997", 120)  # 60 s of this call
    time.sleep(3)
    if controller_first:
        restart_killed(platform.settings, "controller", supervisor=platform.supervisor)
        assert wait_for(lambda: metric(platform.settings, "boomerang_controller_sessions") == 1, timeout=20)
    restart_killed(platform.settings, "kamailio")
    try:  # the restarted Kamailio holds both legs again
        assert wait_for(lambda: metric(platform.settings, "boomerang_active_legs") == 2, timeout=20)
        assert wait_for(lambda: all_over(platform, account_id), timeout=120)
    finally:
        code, messages = carrier.finish()
    assert code == 0, messages[-2000:]  # both legs got their BYE from the new Kamailio
    [ended] = sessions_of(platform, account_id)
    assert ended.end_reason == "out of credit"
    cdrs = check_billing_on_the_wire(platform, account_id, [carrier.trace])
    assert len(cdrs) == 2 and all(cdr.duration_seconds >= 55 for cdr in cdrs)
    assert settled_balance(platform, account_id) >= 0


def test_a_bridged_call_survives_an_rtpengine_restart_and_is_billed_to_its_end(platform, tmp_path):
    """kill -9 of rtpengine during a bridged call: the restarted rtpengine reads the call back from
    its Redis and carries its media on the same ports; the call runs to the end of its credit."""
    account_id, carrier = bridged_web_call(platform, tmp_path, "0.20", "+447700900995", 120)  # 60 s of this call
    [session_id] = [session.id for session in sessions_of(platform, account_id)]
    time.sleep(3)
    media_before = rtpengine_request(platform.settings, {"command": "query", "call-id": str(session_id)})
    restart_killed(platform.settings, "rtpengine")
    try:
        media_after = rtpengine_request(platform.settings, {"command": "query", "call-id": str(session_id)})
        assert local_ports(media_after) == local_ports(media_before) != []  # the same media, the same ports
        assert wait_for(lambda: all_over(platform, account_id), timeout=120)
    finally:
        code, messages = carrier.finish()
    assert code == 0, messages[-2000:]  # both legs got their BYE, at the end of the credit
    [ended] = sessions_of(platform, account_id)
    assert ended.end_reason == "out of credit"
    cdrs = check_billing_on_the_wire(platform, account_id, [carrier.trace])
    assert len(cdrs) == 2 and all(cdr.duration_seconds >= 55 for cdr in cdrs)
    assert settled_balance(platform, account_id) >= 0


def local_ports(query: dict) -> list[int]:
    """The ports rtpengine receives a call's media on, from its answer to "query"."""
    return sorted(
        stream["local port"]
        for tag in query.get("tags", {}).values()
        for media in tag.get("medias", [])
        for stream in media.get("streams", [])
    )


def test_a_call_whose_media_is_lost_is_hung_up_at_both_ends_and_billed_to_the_cut(platform, tmp_path):
    """kill -9 of rtpengine during a bridged call, and what it kept of its calls lost too: nobody
    hears anything any more, so both legs get a BYE within seconds and are billed to that moment."""
    account_id, carrier = bridged_web_call(platform, tmp_path, "5.00", "+447700900996", 120)
    time.sleep(3)
    killed_at = utcnow()
    restart_killed(platform.settings, "rtpengine", meanwhile=lambda: forget_media_state(platform.settings))
    try:
        assert wait_for(lambda: all_over(platform, account_id), timeout=30)
    finally:
        code, messages = carrier.finish()
    assert code == 0, messages[-2000:]  # both legs got a BYE
    [ended] = sessions_of(platform, account_id)
    assert ended.end_reason == "media lost"
    on_wire = wire(carrier.trace)
    with transaction(platform.db) as session:
        cdrs = list(session.execute(select(Cdr).where(Cdr.account_id == account_id)).scalars())
        call_ids = dict(
            session.execute(select(CallLeg.id, CallLeg.sip_call_id).where(CallLeg.session_id == ended.id)).all()
        )
    assert len(cdrs) == 2
    for cdr in cdrs:
        seen = on_wire[call_ids[cdr.leg_id]]
        assert (seen.bye - killed_at).total_seconds() <= 10  # no leg up without media for more than 10 s
        assert abs((cdr.end_time - seen.bye).total_seconds()) <= 1.0  # billed to the cut
