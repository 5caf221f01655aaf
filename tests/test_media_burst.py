"""A burst of callbacks nobody answers leaves rtpengine holding nothing, and the next callback works.

250 callers dial the access number within 5 s; each is called back, and each phone rings until the
platform gives up on it. Every session's media must be released at its end: a leak fills
rtpengine's ports until no callback can be placed. Real Kamailio, rtpengine and call controller;
sipp as the carrier and its phones.
"""

from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import func, select

from boomerang import provisioning, services
from boomerang.store import make_engine, read_only_factory, session_factory, transaction
from boomerang.store.models import CallbackSession
from boomerang.store.types import utcnow
from boomerang.supervisor import Supervisor
from tests.servicekit import (
    SIPP_DIR,
    GatewaySim,
    free_port,
    metric,
    phone_scenario,
    rtpengine_calls,
    running_edge,
    sipp,
    two_carriers,
    wait_for,
)

pytestmark = pytest.mark.sip

ACCESS = "123777777"  # rings 1 s, calls back 3 s after the busy, never tries again
CALLERS = 250
PER_SECOND = 50
CALLER_PREFIX = "4477009100"  # the burst's callers: this and the call's number, 1 to CALLERS
# Each callback holds two media streams (the phone, the prompts) of two ports each while it rings.
MEDIA_PORTS = (34000, 34000 + CALLERS * 4 + 400)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_edge(
        tmp_path_factory.mktemp("burst"),
        triggers_per_second=str(PER_SECOND * 2),
        rtpengine_port_min=str(MEDIA_PORTS[0]),
        rtpengine_port_max=str(MEDIA_PORTS[1]),
        rtpengine_silence_timeout_seconds="600",  # the simulated phones send no RTP
    ) as settings:
        phone_port = free_port()
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            two_carriers(session, phone_port, free_port())
            provisioning.add_access_number(
                session, provisioning.AccessNumberSpec(number=ACCESS, ring_time_seconds=1, callback_delay_seconds=3)
            )
        time.sleep(5.5)  # the edge's 5 s cache of gateways and access numbers
        controller = Supervisor(settings, out=io.StringIO())
        controller.start(services.controller(settings))
        try:
            yield settings, phone_port, read_only_factory(engine)
        finally:
            controller.stop_all()
            engine.dispose()


def sessions_since(sessions, since) -> list[CallbackSession]:
    with transaction(sessions) as session:
        query = select(CallbackSession).where(CallbackSession.requested_at >= since)
        return list(session.execute(query).scalars())


def burst_scenario(tmp_path) -> str:
    """trigger.xml with a caller of its own for each call: the prefix, then the call's number."""
    text = (SIPP_DIR / "trigger.xml").read_text().replace("[caller]", "[caller][call_number]")
    path = tmp_path / "trigger_burst.xml"
    path.write_text(text)
    return str(path)


def test_a_burst_of_unanswered_callbacks_leaves_no_media_and_the_next_callback_works(platform, tmp_path):
    settings, phone_port, sessions = platform
    since = utcnow()
    phones = GatewaySim("gw_ring_until_cancel.xml", phone_port, tmp_path, 150, calls=CALLERS)
    triggers = sipp(
        burst_scenario(tmp_path), settings.sip_listen, "-s", ACCESS, "-key", "caller", "+" + CALLER_PREFIX,
        "-r", str(PER_SECOND), "-l", str(CALLERS), calls=CALLERS, timeout=60,
    )  # fmt: skip
    assert triggers.returncode == 0, triggers.stdout[-3000:]  # every caller was promised a callback
    try:
        assert wait_for(lambda: len(sessions_since(sessions, since)) == CALLERS, timeout=30)
        # Every phone rang, every callback gave up on it (A_RING_SECONDS) and ended.
        assert wait_for(
            lambda: all(s.state in ("ended", "failed") for s in sessions_since(sessions, since)), timeout=120
        )
    finally:
        code, messages = phones.finish()
    assert code == 0, messages[-3000:]  # each phone was called once and got our CANCEL
    with transaction(sessions) as session:
        reasons = dict(
            session.execute(
                select(CallbackSession.end_reason, func.count())
                .where(CallbackSession.requested_at >= since)
                .group_by(CallbackSession.end_reason)
            ).all()
        )
    assert reasons == {"leg A not answered": CALLERS}
    assert wait_for(lambda: rtpengine_calls(settings) == [], timeout=15)  # no session's media left behind
    assert wait_for(lambda: metric(settings, "boomerang_media_calls") == 0, timeout=15)

    # And the platform still calls people back: a phone that answers hears its callback.
    caller = CALLER_PREFIX + "999"
    phone = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=2000), phone_port, tmp_path, 60)
    after = utcnow()
    assert sipp("trigger.xml", settings.sip_listen, "-s", ACCESS, "-key", "caller", "+" + caller).returncode == 0
    assert wait_for(
        lambda: [s.end_reason for s in sessions_since(sessions, after) if s.state == "ended"] == ["caller hung up"],
        timeout=60,
    )
    assert phone.finish()[0] == 0
