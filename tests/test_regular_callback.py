"""The regular callback end to end: real Kamailio, rtpengine and call controller; sipp plays the
caller's phone (behind the demo carrier) and the destination (behind a second carrier), keying
RFC 4733 digits.

Demo data: account demo (PIN 4321, 10.00 USD), tariff demo (44: 0.10/min 60/60; 1: 0.05/min 30/6).
"""

from __future__ import annotations

import io
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from boomerang import provisioning, services
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import (
    Account,
    AuthorizedCallerId,
    CallbackSession,
    CallerIdOrigin,
    CallLeg,
    Cdr,
    Gateway,
    LedgerEntry,
    LedgerKind,
    LegEvent,
    LegRole,
    LegStatus,
)
from boomerang.supervisor import Supervisor
from tests.servicekit import GatewaySim, free_port, phone_scenario, running_edge, sipp

pytestmark = pytest.mark.sip

ACCESS = "123777777"  # rings 1 s, calls back 3 s after the busy


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The SIP edge and the call controller; the demo carrier reaches the caller's phone, a second
    carrier (tried first for destinations) reaches the called parties."""
    with running_edge(tmp_path_factory.mktemp("callback")) as settings:
        ports = {"phone": free_port(), "destination": free_port()}
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            session.execute(
                update(Gateway).where(Gateway.name == "carrier").values(uri=f"sip:127.0.0.1:{ports['phone']}")
            )
            provisioning.add_gateway(
                session,
                provisioning.GatewaySpec(name="destination", uri=f"sip:127.0.0.1:{ports['destination']}", priority=1),
            )
            provisioning.add_access_number(
                session, provisioning.AccessNumberSpec(number=ACCESS, ring_time_seconds=1, callback_delay_seconds=3)
            )
        time.sleep(5.5)  # the edge's 5 s cache of gateways and access numbers
        controller = Supervisor(settings, out=io.StringIO())
        controller.start(services.controller(settings))
        try:
            yield settings, ports, session_factory(engine)
        finally:
            controller.stop_all()
            engine.dispose()


def wait_for(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def session_of(sessions, caller: str) -> CallbackSession | None:
    with transaction(sessions) as session:
        return (
            session.execute(
                select(CallbackSession)
                .where(CallbackSession.caller_number == caller)
                .order_by(CallbackSession.requested_at.desc())
            )
            .scalars()
            .first()
        )


def finished(sessions, caller: str) -> CallbackSession | None:
    found = session_of(sessions, caller)
    return found if found is not None and found.state in ("ended", "failed") else None


def test_pin_flow_destination_back_to_the_prompt_and_the_caller_id_is_saved(platform, tmp_path):
    settings, ports, sessions = platform
    caller = "447700900150"
    # The phone keys its PIN and a destination ahead of the prompts (they are kept); the destination
    # answers, talks and hangs up; the caller is back at the destination prompt and hangs up later.
    keys = "4321#0012025550143#"
    phone = GatewaySim(
        phone_scenario(tmp_path, keys, wait_ms=1000, gap_ms=150, hang_up_after_ms=20000), ports["phone"], tmp_path, 60
    )
    destination = GatewaySim("gw_answer_then_bye.xml", ports["destination"], tmp_path, 60)
    with transaction(sessions) as session:
        balance_before = session.execute(select(Account.balance).where(Account.login == "demo")).scalar_one()

    triggered = time.monotonic()
    assert sipp("trigger.xml", settings.sip_listen, "-s", ACCESS, "-key", "caller", "+" + caller).returncode == 0
    ended = wait_for(lambda: finished(sessions, caller), timeout=60)
    assert ended is not None, session_of(sessions, caller)
    assert ended.end_reason == "caller hung up"
    assert time.monotonic() - triggered < 60

    code, messages = phone.finish()
    assert code == 0, messages[-3000:]
    assert destination.finish()[0] == 0

    with transaction(sessions) as session:
        legs = (
            session.execute(select(CallLeg).where(CallLeg.session_id == ended.id).order_by(CallLeg.created_at))
            .scalars()
            .all()
        )
        [a, b] = legs
        dialing = session.execute(
            select(LegEvent.at).where(LegEvent.leg_id == a.id, LegEvent.status == LegStatus.DIALING)
        ).scalar_one()
        saved = session.execute(select(AuthorizedCallerId).where(AuthorizedCallerId.number == caller)).scalar_one()
        cdrs = {c.role: c for c in session.execute(select(Cdr).where(Cdr.session_id == ended.id)).scalars()}
        charges = (
            session.execute(
                select(LedgerEntry.amount).where(
                    LedgerEntry.kind == LedgerKind.CHARGE, LedgerEntry.reference.in_([f"cdr:{a.id}", f"cdr:{b.id}"])
                )
            )
            .scalars()
            .all()
        )
        balance_after = session.execute(select(Account.balance).where(Account.login == "demo")).scalar_one()

    # Called back when promised: the due time (ring 1 s + delay 3 s after the trigger), within 1 s.
    assert abs(dialing - ended.due_at) < timedelta(seconds=1)
    assert (a.role, a.number, a.status) == (LegRole.A, caller, LegStatus.ENDED)
    assert (b.role, b.number, b.status, b.hangup_by) == (LegRole.B, "12025550143", LegStatus.ENDED, "peer")
    assert saved.origin is CallerIdOrigin.PIN  # a good PIN saved the caller ID for next time
    # One CDR per leg, charged once each; the balance moved by exactly their costs.
    assert set(cdrs) == {LegRole.A, LegRole.B}
    assert cdrs[LegRole.A].price_per_minute == Decimal("0.10") and cdrs[LegRole.B].price_per_minute == Decimal("0.05")
    assert sorted(-amount for amount in charges) == sorted(c.cost for c in cdrs.values() if c.cost)
    assert balance_after == balance_before - sum(c.cost for c in cdrs.values())
