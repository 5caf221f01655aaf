"""Call execution for the controller: Kamailio places legs to carrier gateways and reports on them.

The test stands in for the call controller on the evapi channel; sipp plays the carrier gateways.
"""

from __future__ import annotations

import http.client
import itertools
import re
import time

import pytest
from sqlalchemy import update

from boomerang import provisioning
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import Gateway, NumberFormat
from tests.servicekit import ControllerProbe, GatewaySim, free_port, metric, running_edge, wait_for

pytestmark = pytest.mark.sip

SDP = "v=0\r\no=boomerang 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
CALLER_ID = "447700900555"
_legs = itertools.count(1)


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """A primary gateway that wants +E.164 numbers, and a backup that wants national UK numbers."""
    with running_edge(tmp_path_factory.mktemp("legs"), sip_max_leg_seconds="3600") as settings:
        ports = {"primary": free_port(), "backup": free_port()}
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            session.execute(update(Gateway).values(enabled=False))  # the demo carrier is not in this test
            provisioning.add_gateway(
                session,
                provisioning.GatewaySpec(
                    name="primary", uri=f"sip:127.0.0.1:{ports['primary']}", priority=1,
                    number_format=NumberFormat.PLUS_E164,
                ),
            )  # fmt: skip
            provisioning.add_gateway(
                session,
                provisioning.GatewaySpec(
                    name="backup", uri=f"sip:127.0.0.1:{ports['backup']}", priority=2,
                    number_format=NumberFormat.NATIONAL, country_code="44", add_prefix="1010",
                ),
            )  # fmt: skip
        engine.dispose()
        time.sleep(5.5)  # the edge reads gateways through a 5 s cache
        yield settings, ports


@pytest.fixture
def controller(edge):
    probe = ControllerProbe(edge[0].controller_evapi_listen)
    yield probe
    probe.close()


@pytest.fixture
def gateways(edge, tmp_path):
    started = []

    def start(name: str, scenario: str) -> GatewaySim:
        sim = GatewaySim(scenario, edge[1][name], tmp_path)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def originate(controller, **fields) -> str:
    leg = f"leg-{next(_legs)}-{time.monotonic_ns()}"
    command = {"type": "originate", "leg": leg, "target": "447700900123", "caller_id": CALLER_ID, "sdp": SDP}
    controller.send({**command, **fields})
    return leg


def events_of(controller, leg: str, kind: str, count: int = 1, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in controller.messages if m.get("leg") == leg and m.get("type") == kind]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    return [m for m in controller.messages if m.get("leg") == leg and m.get("type") == kind]


def first_invite(messages: str) -> str:
    match = re.search(r"^INVITE .*?\r?\n\r?\n", messages, re.S | re.M)
    assert match, messages[-2000:]
    return match.group(0)


def test_a_leg_rings_answers_and_is_hung_up_by_the_controller(edge, controller, gateways):
    gateway = gateways("primary", "gw_answer.xml")
    leg = originate(controller)
    assert [e["code"] for e in events_of(controller, leg, "leg_progress")] == [180]
    [answered] = events_of(controller, leg, "leg_answered")
    assert "m=audio" in answered["sdp"] and answered["gateway"] == "primary"

    controller.send({"type": "hangup", "leg": leg})
    [ended] = events_of(controller, leg, "leg_ended")
    assert ended["by"] == "platform"
    code, messages = gateway.finish()
    assert code == 0, messages  # the gateway saw INVITE, ACK and our BYE
    invite = first_invite(messages)
    # The number in the gateway's format, our caller ID in From and P-Asserted-Identity, our SDP.
    assert invite.startswith("INVITE sip:+447700900123@127.0.0.1:")
    assert re.search(rf"^From: <sip:{CALLER_ID}@127\.0\.0\.1>;tag=", invite, re.M)
    assert re.search(rf"^P-Asserted-Identity: <sip:{CALLER_ID}@127\.0\.0\.1>", invite, re.M)
    assert "m=audio 40000 RTP/AVP 0" in messages


def test_the_called_party_hanging_up_is_reported(edge, controller, gateways):
    gateway = gateways("primary", "gw_answer_then_bye.xml")
    leg = originate(controller)
    assert events_of(controller, leg, "leg_answered")
    [ended] = events_of(controller, leg, "leg_ended")
    assert ended["by"] == "peer"
    assert gateway.finish()[0] == 0


def test_dtmf_by_sip_info_is_reported(edge, controller, gateways):
    gateways("primary", "gw_answer_info.xml")
    leg = originate(controller)
    [dtmf] = events_of(controller, leg, "leg_dtmf")
    assert dtmf["digit"] == "5" and dtmf["source"] == "info"
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_ended")


def test_busy_is_final_and_reported_with_its_code(edge, controller, gateways):
    primary = gateways("primary", "gw_busy.xml")
    leg = originate(controller)
    [failed] = events_of(controller, leg, "leg_failed")
    assert failed["code"] == 486
    assert primary.finish()[0] == 0
    assert len(events_of(controller, leg, "leg_dialing", timeout=0.5)) == 1  # busy is not a gateway failure


def test_a_failing_gateway_hands_the_leg_to_the_next(edge, controller, gateways):
    primary = gateways("primary", "gw_unavailable.xml")
    backup = gateways("backup", "gw_answer.xml")
    leg = originate(controller)
    [answered] = events_of(controller, leg, "leg_answered")
    assert answered["gateway"] == "backup"
    assert [e["gateway"] for e in events_of(controller, leg, "leg_dialing", 2)] == ["primary", "backup"]
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_ended")
    assert primary.finish()[0] == 0
    code, messages = backup.finish()
    assert code == 0
    assert first_invite(messages).startswith("INVITE sip:101007700900123@127.0.0.1:")  # national, prefixed


def test_cancelling_a_ringing_leg(edge, controller, gateways):
    gateway = gateways("primary", "gw_ring_until_cancel.xml")
    leg = originate(controller)
    assert events_of(controller, leg, "leg_progress")
    controller.send({"type": "hangup", "leg": leg})
    [cancelled] = events_of(controller, leg, "leg_cancelled")
    assert cancelled["code"] == 487
    assert gateway.finish()[0] == 0


def test_an_answer_crossing_our_cancel_is_hung_up_at_once(edge, controller, gateways):
    gateway = gateways("primary", "gw_answer_after_cancel.xml")
    leg = originate(controller)
    assert events_of(controller, leg, "leg_progress")
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_late_answer")
    code, messages = gateway.finish()
    assert code == 0, messages[-3000:]  # the 200 was acknowledged, and a BYE came within 1 s
    assert not events_of(controller, leg, "leg_answered", timeout=0.5)  # never a call of anybody's


def test_kamailio_cuts_a_leg_at_its_maximum_duration_without_the_controller(edge, controller, gateways):
    gateway = gateways("primary", "gw_answer.xml")
    leg = originate(controller, max_seconds=2)
    assert events_of(controller, leg, "leg_answered")
    answered_at = time.monotonic()
    [ended] = events_of(controller, leg, "leg_ended", timeout=10)
    assert ended["by"] == "max_duration"
    assert time.monotonic() - answered_at >= 1.5
    assert gateway.finish()[0] == 0  # the gateway got the BYE


def test_no_gateway_answering_at_all(edge, controller, gateways):
    gateways("primary", "gw_unavailable.xml")
    gateways("backup", "gw_unavailable.xml")
    leg = originate(controller)
    failed = events_of(controller, leg, "leg_failed")
    assert [f["code"] for f in failed] == [503], controller.messages


def test_a_bad_command_is_answered_not_fatal(edge, controller):
    controller.send({"type": "originate", "leg": "x"})  # no target
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not [m for m in controller.messages if m["type"] == "command_error"]:
        time.sleep(0.02)
    assert [m for m in controller.messages if m["type"] == "command_error"]
    controller.send({"type": "hangup", "leg": "never-existed"})
    assert controller._call(controller._channel.ping()) < 2  # the channel still works


def test_a_gateway_that_does_not_answer_at_all_is_skipped(edge, controller, gateways):
    backup = gateways("backup", "gw_answer.xml")  # nothing listens on the primary's port
    leg = originate(controller)
    [answered] = events_of(controller, leg, "leg_answered", timeout=20)
    assert answered["gateway"] == "backup"
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_ended")
    assert backup.finish()[0] == 0


def test_metrics_show_legs_and_active_calls(edge, controller, gateways):
    gateway = gateways("primary", "gw_answer.xml")
    leg = originate(controller)
    assert events_of(controller, leg, "leg_answered")
    assert re.search(r"^boomerang_active_legs 1(\.0+)? ", metrics_text(edge[0]), re.M)
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_ended")
    text = metrics_text(edge[0])
    assert re.search(r"^boomerang_active_legs 0(\.0+)? ", text, re.M)
    assert 'boomerang_legs_total{event="failed"}' in text and 'boomerang_legs_total{event="answered"}' in text
    assert gateway.finish()[0] == 0


def test_the_controllers_counts_are_served_as_metrics(edge, controller):
    controller.send({"type": "gauges", "sessions": 3, "media_calls": 7})
    assert wait_for(lambda: metric(edge[0], "boomerang_controller_sessions") == 3, timeout=5)
    assert metric(edge[0], "boomerang_media_calls") == 7
    controller.send({"type": "gauges", "sessions": 0, "media_calls": -1})  # rtpengine's count not known
    assert wait_for(lambda: metric(edge[0], "boomerang_controller_sessions") == 0, timeout=5)
    assert metric(edge[0], "boomerang_media_calls") == 7


def metrics_text(settings) -> str:
    connection = http.client.HTTPConnection(settings.metrics_listen.host, settings.metrics_listen.port, timeout=5)
    connection.request("GET", "/metrics")
    return connection.getresponse().read().decode()


def test_the_controller_re_invites_an_answered_leg(edge, controller, gateways):
    gateway = gateways("primary", "gw_answer_accept_reinvite.xml")
    leg = originate(controller)
    assert events_of(controller, leg, "leg_answered")
    controller.send({"type": "reinvite", "leg": leg, "sdp": SDP.replace("m=audio 40000", "m=audio 41000")})
    time.sleep(1)
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_ended")
    code, messages = gateway.finish()
    assert code == 0, messages[-3000:]  # it got the new SDP, its 200 was acknowledged, then the BYE


def test_a_re_invite_from_the_far_end_keeps_our_media_and_is_reported(edge, controller, gateways):
    gateway = gateways("primary", "gw_answer_send_reinvite.xml")
    leg = originate(controller)
    [reinvite] = events_of(controller, leg, "leg_reinvite")
    assert "a=sendonly" in reinvite["sdp"]
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_ended")
    code, messages = gateway.finish()
    assert code == 0, messages[-3000:]  # our 200 carried our SDP (port 40000)


def test_hang_ups_crossing_their_deadlines_leave_kamailio_serving(edge, controller, gateways, tmp_path):
    """The controller hangs legs up at the moment Kamailio's own deadline cuts them (as it does when
    credit ends): each leg ends once, and Kamailio goes on answering the controller and placing legs."""
    count = 100
    carrier = GatewaySim("gw_answer_long.xml", edge[1]["primary"], tmp_path, calls=count)
    try:
        legs = [originate(controller, max_seconds=2) for _ in range(count)]
        assert len(controller.wait_for("leg_answered", count, timeout=20)) == count, controller.messages[-5:]
        # The moment Kamailio's timer starts cutting them, the controller hangs every one up.
        assert controller.wait_for("leg_ended", timeout=10)
        for leg in reversed(legs):
            controller.send({"type": "hangup", "leg": leg})
        wait_for(lambda: len(controller.of_type("leg_ended")) >= count, timeout=10)
        ended = [message["leg"] for message in controller.of_type("leg_ended")]
        assert sorted(ended) == sorted(legs), f"{len(set(ended))} of {count} legs ended, {len(ended)} times"
        assert controller._call(controller._channel.ping()) < 2
    finally:
        carrier.stop()
    after = gateways("primary", "gw_answer.xml")
    leg = originate(controller)
    assert events_of(controller, leg, "leg_answered")
    controller.send({"type": "hangup", "leg": leg})
    assert events_of(controller, leg, "leg_ended")
    assert after.finish()[0] == 0
