"""SMS commands end to end over SIP MESSAGE: sipp as the carrier sends texts to the service number
through real Kamailio; the call controller answers each with exactly one SMS, sent back through
the same carrier (another sipp takes it), and carries out the command.

Demo data: account demo (PIN 4321, 10.00 USD, tariff demo: 1 at 0.05/min, 44 at 0.10/min).
"""

from __future__ import annotations

import io
import re
import socket
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from boomerang import provisioning, services
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import (
    AuthorizedCallerId,
    CallbackKind,
    CallbackSession,
    CallerIdOrigin,
    CallLeg,
    Gateway,
    LegEvent,
    LegRole,
    LegStatus,
    SmsDirection,
    SmsMessage,
    SmsStatus,
)
from boomerang.store.types import utcnow
from boomerang.supervisor import Supervisor
from callback import requests
from callback.sms_commands import HELP_TEXT
from tests.servicekit import GatewaySim, free_port, phone_scenario, running_edge, sipp, wait_for

pytestmark = pytest.mark.sip

SMS_NUMBER = "1234000000"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The carrier both sends texts and takes our replies; calls to phones go through "voice"."""
    with running_edge(tmp_path_factory.mktemp("sms")) as settings:
        ports = {"carrier": free_port(), "voice": free_port()}
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            session.execute(
                update(Gateway).where(Gateway.name == "carrier").values(uri=f"sip:127.0.0.1:{ports['carrier']}")
            )
            provisioning.add_gateway(
                session, provisioning.GatewaySpec(name="voice", uri=f"sip:127.0.0.1:{ports['voice']}", priority=1)
            )
        time.sleep(5.5)  # the edge's 5 s cache of gateways
        controller = Supervisor(settings, out=io.StringIO())
        controller.start(services.controller(settings))
        try:
            yield settings, ports, session_factory(engine)
        finally:
            controller.stop_all()
            engine.dispose()


def text(settings, sender: str, body: str, call_id: str | None = None) -> None:
    """The carrier delivers a text from `sender` to the service number; Kamailio accepts it (202)."""
    extra = ["-cid_str", call_id] if call_id else []
    result = sipp("message.xml", settings.sip_listen, "-s", SMS_NUMBER, "-key", "caller", "+" + sender,
                  "-key", "text", body, "-key", "content_type", "text/plain", *extra)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]


def reply_body(messages: str) -> str:
    """The text of the MESSAGE the carrier took, from sipp's message trace."""
    found = re.search(r"MESSAGE sip:.*?\r?\n\r?\n(.*?)(?:\r?\n)*-{5,}", messages, re.S)
    assert found, messages[-2000:]
    return found.group(1).strip()


def ask(platform, tmp_path, sender: str, body: str, call_id: str | None = None) -> str:
    """Send a text, and return the one reply the carrier is given for it."""
    settings, ports, _ = platform
    carrier = GatewaySim("gw_sms_receiver.xml", ports["carrier"], tmp_path, 15)
    text(settings, sender, body, call_id)
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]
    return reply_body(messages)


def texts_of(sessions, sender: str) -> list[tuple[SmsDirection, str, SmsStatus]]:
    with transaction(sessions) as session:
        rows = session.execute(
            select(SmsMessage)
            .where((SmsMessage.sender == sender) | (SmsMessage.receiver == sender))
            .order_by(SmsMessage.id)
        ).scalars()
        return [(row.direction, row.text.strip(), row.status) for row in rows]


def callbacks_of(sessions, sender: str) -> int:
    with transaction(sessions) as session:
        return session.execute(
            select(func.count()).select_from(CallbackSession).where(CallbackSession.caller_number == sender)
        ).scalar_one()


def test_a_phone_registers_with_its_pin_then_asks_its_balance_and_a_rate(platform, tmp_path):
    _, _, sessions = platform
    sender = "447700900301"
    assert ask(platform, tmp_path, sender, "BAL") == (
        "This phone is not registered. Send REG followed by your PIN to register it."
    )
    assert ask(platform, tmp_path, sender, "reg 4321").startswith("This phone is registered")
    assert ask(platform, tmp_path, sender, "BAL") == "Your balance is 10.00 USD."
    assert ask(platform, tmp_path, sender, "rate 0012025550143") == (
        "Calls to United States and Canada (+12025550143) cost 0.05 USD per minute."
    )
    assert ask(platform, tmp_path, sender, "RATE +861012345678") == "Calls to +861012345678 are not available."
    assert ask(platform, tmp_path, sender, "HELP") == HELP_TEXT
    assert ask(platform, tmp_path, sender, "REG 4321") == "This phone is already registered to your account."
    with transaction(sessions) as session:
        saved = session.execute(select(AuthorizedCallerId).where(AuthorizedCallerId.number == sender)).scalar_one()
    assert saved.origin is CallerIdOrigin.SMS
    # Every text stored, each answered once, the answers sent (the carrier took them).
    stored = texts_of(sessions, sender)
    assert [direction for direction, _, _ in stored] == [SmsDirection.INBOUND, SmsDirection.OUTBOUND] * 7
    assert wait_for(lambda: all(status is SmsStatus.SENT for d, _, status in texts_of(sessions, sender)
                                if d is SmsDirection.OUTBOUND), timeout=10)  # fmt: skip


def test_wrong_pins_lock_the_phone_out_and_register_nothing(platform, tmp_path):
    _, _, sessions = platform
    sender = "447700900302"
    for _ in range(3):
        assert ask(platform, tmp_path, sender, "REG 9999") == "That PIN is not valid."
    # Even the right PIN is refused now: guessing by SMS stops after three tries an hour.
    assert ask(platform, tmp_path, sender, "REG 4321") == "Too many wrong PINs from this phone. Try again in an hour."
    with transaction(sessions) as session:
        assert session.execute(select(AuthorizedCallerId).where(AuthorizedCallerId.number == sender)).first() is None
    # The PINs tried are not kept.
    assert {text for direction, text, _ in texts_of(sessions, sender) if direction is SmsDirection.INBOUND} == {
        "REG <PIN hidden>"
    }


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        ("HELLO", 'Unknown command "HELLO". ' + HELP_TEXT),
        ("BAL please", "BAL takes nothing after it. " + HELP_TEXT),
        ("RATE", "Send RATE followed by one number, e.g. RATE +447700900123."),
        ("RATE 12ab", '"12ab" is not a telephone number. Use the international form, e.g. +447700900123.'),
        ("CB 1 2 3", "Too many numbers: CB, CB num or CB A B."),
        ("CB 0012ab", '"0012ab" is not a telephone number. Use the international form, e.g. +447700900123.'),
        ("REG", "Send REG followed by your PIN, e.g. REG 1234."),
    ],
)
def test_bad_commands_get_the_reason_and_change_nothing(platform, tmp_path, body, reply):
    _, _, sessions = platform
    sender = "447700900303"
    with transaction(sessions) as session:
        if session.execute(select(AuthorizedCallerId).where(AuthorizedCallerId.number == sender)).first() is None:
            provisioning.add_caller_id(session, "demo", "+" + sender)
    assert ask(platform, tmp_path, sender, body) == reply
    assert callbacks_of(sessions, sender) == 0


def test_the_same_text_delivered_twice_is_answered_once(platform, tmp_path):
    settings, ports, sessions = platform
    sender = "447700900304"
    assert ask(platform, tmp_path, sender, "HELP", call_id="duplicate-delivery-1@carrier") == (
        "This phone is not registered. Send REG followed by your PIN to register it."
    )
    carrier = GatewaySim("gw_sms_receiver.xml", ports["carrier"], tmp_path, 4)
    text(settings, sender, "HELP", call_id="duplicate-delivery-1@carrier")  # accepted again (202) ...
    code, _ = carrier.finish()
    assert code != 0  # ... but no second reply reached the carrier
    assert [direction for direction, _, _ in texts_of(sessions, sender)] == [
        SmsDirection.INBOUND,
        SmsDirection.OUTBOUND,
    ]


def test_cb_calls_the_sender_back(platform, tmp_path):
    settings, ports, sessions = platform
    sender = "447700900305"
    with transaction(sessions) as session:
        provisioning.add_caller_id(session, "demo", "+" + sender)
    phone = GatewaySim("gw_answer_then_bye.xml", ports["voice"], tmp_path, 30)
    assert ask(platform, tmp_path, sender, "cb") == "We are calling you back now."
    code, messages = phone.finish()
    assert code == 0, messages[-2000:]
    assert re.search(rf"INVITE sip:\+?{sender}@", messages)
    callback = wait_for(
        lambda: (s := _session(sessions, sender)) is not None and s.ended_at is not None and s, timeout=15
    )
    assert callback.kind is CallbackKind.SMS and callback.end_reason == "caller hung up"


def _session(sessions, sender: str) -> CallbackSession | None:
    with transaction(sessions) as session:
        return session.execute(
            select(CallbackSession).where(CallbackSession.caller_number == sender)
        ).scalar_one_or_none()


def test_cb_with_a_number_calls_the_sender_then_connects_that_number(platform, tmp_path):
    _, ports, sessions = platform
    sender = "447700900306"
    with transaction(sessions) as session:
        provisioning.add_caller_id(session, "demo", "+" + sender)
    # Both calls reach phones behind "voice": the sender's, which stays 12 s, then the destination's.
    phones = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=12000), ports["voice"], tmp_path,
                        40, calls=2)  # fmt: skip
    assert ask(platform, tmp_path, sender, "CB 0012025550143") == "We are calling you back now, then +12025550143."
    callback = wait_for(lambda: (s := _session(sessions, sender)) is not None and s.ended_at is not None and s, 40)
    phones.stop()
    assert callback and callback.end_reason == "caller hung up"
    with transaction(sessions) as session:
        legs = (
            session.execute(select(CallLeg).where(CallLeg.session_id == callback.id).order_by(CallLeg.created_at))
            .scalars()
            .all()
        )
    assert [(leg.role, leg.number, leg.caller_id) for leg in legs] == [
        (LegRole.A, sender, SMS_NUMBER),  # the callback shows the service number the user texted
        (LegRole.B, "12025550143", sender),
    ]
    assert legs[1].answered_at is not None  # connected without a destination prompt


def test_cb_with_two_numbers_connects_them_with_no_ivr(platform, tmp_path):
    _, ports, sessions = platform
    sender, a, b = "447700900307", "447700900417", "12025550199"
    with transaction(sessions) as session:
        provisioning.add_caller_id(session, "demo", "+" + sender)
    phones = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=8000), ports["voice"], tmp_path,
                        40, calls=2)  # fmt: skip
    assert ask(platform, tmp_path, sender, f"CB +{a} 001{b[1:]}") == f"Calling +{a} now, then connecting +{b}."
    callback = wait_for(lambda: (s := _session(sessions, a)) is not None and s.ended_at is not None and s, 40)
    phones.stop()
    assert callback and callback.connect_two and callback.end_reason == "caller hung up"
    with transaction(sessions) as session:
        legs = (
            session.execute(select(CallLeg).where(CallLeg.session_id == callback.id).order_by(CallLeg.created_at))
            .scalars()
            .all()
        )
    # Each side is shown the other's number; B is dialled as soon as A answers (nothing to ask).
    assert [(leg.role, leg.number, leg.caller_id) for leg in legs] == [(LegRole.A, a, b), (LegRole.B, b, a)]
    assert legs[1].answered_at is not None
    with transaction(sessions) as session:
        dialled = session.execute(
            select(LegEvent.at).where(LegEvent.leg_id == legs[1].id, LegEvent.status == LegStatus.DIALING)
        ).scalar_one()
    assert dialled - legs[0].answered_at < timedelta(seconds=2)
    assert callbacks_of(sessions, sender) == 0  # the sender is not called


def test_a_connect_two_call_cancelled_while_a_rings_is_hung_up(platform, tmp_path):
    _, ports, sessions = platform
    sender, a, b = "447700900308", "447700900418", "12025550198"
    with transaction(sessions) as session:
        provisioning.add_caller_id(session, "demo", "+" + sender)
    ringing = GatewaySim("gw_ring_until_cancel.xml", ports["voice"], tmp_path, 30)
    assert ask(platform, tmp_path, sender, f"CB +{a} +{b}") == f"Calling +{a} now, then connecting +{b}."
    callback = wait_for(lambda: (s := _session(sessions, a)) is not None and s.state == "calling_a" and s, 15)
    assert callback
    time.sleep(1)  # A is ringing
    with transaction(sessions) as session:
        assert requests.cancel(session, callback.account_id, callback.id, utcnow())
    code, messages = ringing.finish()
    assert code == 0, messages[-2000:]  # the phone got our CANCEL
    ended = wait_for(lambda: (s := _session(sessions, a)) is not None and s.ended_at is not None and s, 15)
    assert ended and ended.end_reason == "cancelled"
    with transaction(sessions) as session:
        legs = session.execute(select(CallLeg).where(CallLeg.session_id == ended.id).order_by(CallLeg.role)).scalars()
        b = [leg for leg in legs if leg.role is LegRole.B][0]
        dialled = session.execute(
            select(LegEvent.id).where(LegEvent.leg_id == b.id, LegEvent.status == LegStatus.DIALING)
        ).first()
    assert dialled is None and b.status is LegStatus.CANCELLED  # B was reserved, never dialled


def send_raw_message(settings, sender: str, body: bytes, content_type: str) -> str:
    """A carrier's MESSAGE with a body of any bytes (sipp cannot send a NUL), from loopback; the
    status line of Kamailio's answer."""
    port = free_port()
    target = settings.sip_listen
    head = (
        f"MESSAGE sip:{SMS_NUMBER}@{target.host}:{target.port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{port}raw\r\n"
        f"From: <sip:{sender}@127.0.0.1:{port}>;tag=raw{port}\r\n"
        f"To: <sip:{SMS_NUMBER}@{target.host}:{target.port}>\r\n"
        f"Call-ID: raw-{port}@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")  # a character of `sender` above 127 goes as that one byte: not UTF-8
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sip:
        sip.bind(("127.0.0.1", port))
        sip.settimeout(5)
        sip.sendto(head + body, (target.host, target.port))
        while True:
            answer = sip.recv(65535).split(b"\r\n", 1)[0].decode()
            if not answer.startswith("SIP/2.0 100"):
                return answer


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("Café".encode("latin-1"), "text/plain;charset=ISO-8859-1"),
        ("Café".encode("latin-1"), "text/plain"),  # no charset, and not UTF-8: taken as Latin-1
        ("Café".encode("utf-16-be"), "text/plain; charset=UCS-2"),
        ("Café".encode("utf-16"), "text/plain; charset=UTF-16"),
    ],
)
def test_a_text_in_any_charset_is_stored_and_answered(platform, tmp_path, body, content_type):
    settings, ports, sessions = platform
    sender = f"4477009003{len(body):02d}{abs(hash(content_type)) % 100:02d}"
    carrier = GatewaySim("gw_sms_receiver.xml", ports["carrier"], tmp_path, 15)
    assert send_raw_message(settings, "+" + sender, body, content_type) == "SIP/2.0 202 Accepted"
    code, messages = carrier.finish()
    assert code == 0, messages[-2000:]
    assert reply_body(messages).startswith('Unknown command "Café".')
    assert texts_of(sessions, sender)[0][:2] == (SmsDirection.INBOUND, "Café")


def test_a_text_from_a_sender_that_is_not_utf8_gets_an_answer(platform):
    settings, _, _ = platform
    assert send_raw_message(settings, "+4477009003\xe9", b"BAL", "text/plain") == "SIP/2.0 433 Anonymity Disallowed"
