"""The web callback ("connect two") through the portal's API, end to end: real Kamailio, rtpengine
and call controller; sipp as the carrier's called parties. The portal runs in process on the same
database, signed in as a customer.
"""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from sqlalchemy import func, select, update

from boomerang import services
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import Account, CallbackSession, Gateway, Role
from boomerang.supervisor import Supervisor
from tests.portalkit import Portal
from tests.servicekit import GatewaySim, free_port, metric, rtpengine_calls, rtpengine_request, running_edge, wait_for

pytestmark = pytest.mark.sip

A, B = "+447700900501", "+12025550501"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_edge(tmp_path_factory.mktemp("web")) as settings:
        port = free_port()
        engine = make_engine(settings.database_url)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            session.execute(update(Gateway).where(Gateway.name == "carrier").values(uri=f"sip:127.0.0.1:{port}"))
        time.sleep(5.5)  # the edge's gateway cache
        controller = Supervisor(settings, out=io.StringIO())
        controller.start(services.controller(settings))
        portal = Portal(settings, sessions)
        portal.account("alice", balance="5.00", tariff="demo")
        portal.account("mallory", balance="5.00", tariff="demo")
        portal.account("broke", balance="0", tariff="demo")
        portal.account("discreet", balance="5.00", tariff="demo")
        portal.account("operator", role=Role.ADMIN)
        try:
            yield port, portal, sessions
        finally:
            controller.stop_all()
            engine.dispose()


def events(visitor, callback_id: str) -> list[tuple[str, dict]]:
    """The whole event stream of a callback (replayed from the start, then live until it ends)."""
    result = visitor.get(f"/api/callbacks/{callback_id}/events", params={"max_seconds": "90"})
    assert result.status_code == 200 and result.headers["content-type"] == "text/event-stream"
    found = []
    for block in result.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


def statuses(stream) -> list[tuple[str, str]]:
    return [(data["leg"], data["status"]) for kind, data in stream if kind == "leg"]


def invite_senders(messages: str) -> list[str]:
    """The number in the From of each INVITE the carrier received (retransmissions once)."""
    senders = []
    for block in re.split(r"-{5,}", messages):
        if re.search(r"^\s*INVITE sip:", block, re.M):
            found = re.search(r"^From: <sip:\+?(\d+)@.*;tag=(\S+)", block, re.M)
            if found.groups() not in [s for s in senders]:
                senders.append(found.groups())
    return [number for number, _ in senders]


def start(visitor, a: str = A, b: str = B):
    return visitor.post("/api/callbacks", json={"a": a, "b": b})


def test_a_then_b_are_called_bridged_and_every_status_is_streamed_with_the_cost(platform, tmp_path):
    port, portal, _ = platform
    alice = portal.sign_in("alice")
    carrier = GatewaySim("gw_connect_two.xml", port, tmp_path, 40, calls=2)
    started = start(alice)
    assert started.status_code == 201, started.text
    assert started.json["state"] == "requested"  # both legs reserved before anything is dialled
    assert [(leg["leg"], leg["status"]) for leg in started.json["legs"]] == [("A", "queued"), ("B", "queued")]
    stream = events(alice, started.json["id"])
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]
    assert statuses(stream) == [
        ("A", "queued"), ("B", "queued"), ("A", "dialing"), ("A", "ringing"), ("A", "answered"),
        ("B", "dialing"), ("B", "ringing"), ("B", "answered"), ("B", "ended"), ("A", "ended"),
    ]  # fmt: skip
    kind, final = stream[-1]
    assert kind == "end" and final["end_reason"] == "completed"
    assert [(leg["leg"], leg["hangup_by"]) for leg in final["legs"]] == [("A", "platform"), ("B", "peer")]
    assert final["total_cost"] is not None and all(leg["cost"] is not None for leg in final["legs"])
    # A was shown B's number, and B A's.
    assert invite_senders(messages) == [B[1:], A[1:]]


def test_a_busy_ends_the_callback_and_b_is_never_called(platform, tmp_path):
    port, portal, _ = platform
    alice = portal.sign_in("alice")
    carrier = GatewaySim("gw_busy.xml", port, tmp_path, 20)
    started = start(alice, b="+12025550502")
    stream = events(alice, started.json["id"])
    assert carrier.finish()[0] == 0
    assert statuses(stream) == [("A", "queued"), ("B", "queued"), ("A", "dialing"), ("A", "busy"), ("B", "cancelled")]
    assert stream[-1][1]["end_reason"] == "leg A not answered"


def test_a_not_answering_is_recorded_as_no_answer(platform, tmp_path):
    port, portal, _ = platform
    alice = portal.sign_in("alice")
    carrier = GatewaySim("gw_no_answer.xml", port, tmp_path, 20)
    started = start(alice, b="+12025550507")
    stream = events(alice, started.json["id"])
    assert carrier.finish()[0] == 0
    assert statuses(stream) == [
        ("A", "queued"), ("B", "queued"), ("A", "dialing"), ("A", "no_answer"), ("B", "cancelled")
    ]  # fmt: skip
    final = stream[-1][1]
    assert final["end_reason"] == "leg A not answered" and final["legs"][0]["sip_code"] == 480


def test_b_busy_is_told_to_a_and_the_call_ends(platform, tmp_path):
    port, portal, _ = platform
    alice = portal.sign_in("alice")
    carrier = GatewaySim("gw_answer_first_busy_second.xml", port, tmp_path, 40, calls=2)
    started = start(alice, b="+12025550503")
    stream = events(alice, started.json["id"])
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]
    assert ("B", "busy") in statuses(stream)
    assert stream[-1][1]["end_reason"] == "leg B not connected"
    b = stream[-1][1]["legs"][1]
    assert (b["status"], b["sip_code"], b["cost"]) == ("busy", 486, None)


def test_cancel_while_a_rings_hangs_up(platform, tmp_path):
    port, portal, _ = platform
    alice = portal.sign_in("alice")
    carrier = GatewaySim("gw_ring_until_cancel.xml", port, tmp_path, 30)
    started = start(alice, b="+12025550504")
    callback_id = started.json["id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and alice.get(f"/api/callbacks/{callback_id}").json["state"] != "calling_a":
        time.sleep(0.2)
    time.sleep(1)
    assert alice.delete(f"/api/callbacks/{callback_id}").status_code == 202
    stream = events(alice, callback_id)
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]  # the phone got our CANCEL
    assert stream[-1][1]["end_reason"] == "cancelled"
    assert ("B", "dialing") not in statuses(stream) and statuses(stream)[-1] == ("B", "cancelled")


def test_refusals_come_before_anything_is_dialled(platform):
    _, portal, sessions = platform
    broke = portal.sign_in("broke")
    refused = start(broke, b="+12025550505")
    assert refused.status_code == 409 and "credit" in refused.json["detail"]
    alice = portal.sign_in("alice")
    assert start(alice, a="hello").status_code == 422
    assert start(alice, b="+861012345678").status_code == 409  # no rate
    with transaction(sessions) as session:
        owners = session.execute(select(func.count()).select_from(CallbackSession).where(
            CallbackSession.destination_number.in_(["12025550505", "861012345678"]))).scalar_one()  # fmt: skip
    assert owners == 0


def test_another_accounts_callback_is_invisible_and_cannot_be_cancelled(platform, tmp_path):
    port, portal, _ = platform
    alice, mallory = portal.sign_in("alice"), portal.sign_in("mallory")
    carrier = GatewaySim("gw_busy.xml", port, tmp_path, 20)
    started = start(alice, b="+12025550506")
    callback_id = started.json["id"]
    for result in (
        mallory.get(f"/api/callbacks/{callback_id}"),
        mallory.get(f"/api/callbacks/{callback_id}/events"),
        mallory.delete(f"/api/callbacks/{callback_id}"),
    ):
        assert result.status_code == 404
    assert portal.anonymous().get(f"/api/callbacks/{callback_id}").status_code == 401
    events(alice, callback_id)  # the callback runs its course for alice
    carrier.finish()


def test_an_account_can_show_each_side_our_number_instead_of_the_others(platform, tmp_path):
    port, portal, _ = platform
    admin = portal.sign_in("operator")
    changed = admin.patch("/api/admin/accounts/discreet", json={"show_b_to_a": False, "show_a_to_b": False})
    assert changed.status_code == 200, changed.text
    assert (changed.json["show_b_to_a"], changed.json["show_a_to_b"]) == (False, False)
    discreet = portal.sign_in("discreet")
    carrier = GatewaySim("gw_connect_two.xml", port, tmp_path, 40, calls=2)
    started = start(discreet, b="+12025550508")
    events(discreet, started.json["id"])
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]
    # Both INVITEs show the service number (the access number), neither party's own.
    assert set(invite_senders(messages)) == {"123333333"}


def test_an_operator_hangs_up_a_live_call(platform, tmp_path):
    port, portal, _ = platform
    alice, operator = portal.sign_in("alice"), portal.sign_in("operator")
    carrier = GatewaySim("gw_ring_until_cancel.xml", port, tmp_path, 30)
    callback_id = start(alice, b="+12025550509").json["id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and callback_id not in [
        call["id"] for call in operator.get("/api/admin/calls").json["items"] if call["state"] == "calling_a"
    ]:
        time.sleep(0.2)
    time.sleep(1)  # A is ringing
    assert alice.delete(f"/api/admin/calls/{callback_id}").status_code == 403  # operators only
    assert operator.delete(f"/api/admin/calls/{callback_id}").status_code == 202
    stream = events(alice, callback_id)
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]  # the phone got our CANCEL
    assert stream[-1][1]["end_reason"] == "cancelled"
    assert operator.delete(f"/api/admin/calls/{callback_id}").status_code == 404  # over


def test_callbacks_nobody_answers_leave_no_media_behind(platform, tmp_path):
    port, portal, sessions = platform
    account_id = portal.account("unanswered", balance="5.00", tariff="demo")
    with transaction(sessions) as session:
        session.get(Account, account_id).max_concurrent_calls = 30
    caller = portal.sign_in("unanswered")
    nobody = GatewaySim("gw_no_answer.xml", port, tmp_path, 40, calls=10)
    started = [
        start(caller, a=f"+4477009005{n:02d}", b="+12025550510").json["id"] for n in range(10)
    ]  # the media ports of this test allow no more at once
    for callback_id in started:
        assert events(caller, callback_id)[-1][1]["end_reason"] == "leg A not answered"
    assert nobody.finish()[0] == 0
    assert rtpengine_calls(portal.settings) == []  # every call's media deleted, whatever it reached
    # A call rtpengine holds for no session (a controller that died left it) is deleted.
    sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    rtpengine_request(portal.settings, {"command": "offer", "call-id": "left-behind", "from-tag": "x", "sdp": sdp})
    assert rtpengine_calls(portal.settings) == ["left-behind"]
    assert wait_for(lambda: rtpengine_calls(portal.settings) == [], timeout=20)
    # The controller's sessions and rtpengine's calls, in the metrics, come back to the live calls.
    assert wait_for(lambda: metric(portal.settings, "boomerang_controller_sessions") == 0, timeout=15)
    assert wait_for(lambda: metric(portal.settings, "boomerang_media_calls") == 0, timeout=15)
