"""The regular callback end to end: real Kamailio, rtpengine and call controller; sipp plays the
caller's phone (behind the demo carrier) and the destination (behind a second carrier), keying
RFC 4733 digits.

Demo data: account demo (PIN 4321, 10.00 USD), tariff demo (44: 0.10/min 60/60; 1: 0.05/min 30/6).
"""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3
import time
import urllib.request
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from boomerang import probes, provisioning, services
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import (
    AccessNumber,
    Account,
    AuthorizedCallerId,
    CallbackKind,
    CallbackSession,
    CallerIdOrigin,
    CallLeg,
    Cdr,
    LedgerEntry,
    LedgerKind,
    LegEvent,
    LegRole,
    LegStatus,
)
from boomerang.store.types import utcnow
from boomerang.supervisor import Supervisor
from callback.prompts import Prompt, sentence
from callback.speech import SpeechCache
from tests.rtp_listener import RtpListener, similarity, voiced_seconds, wav_samples
from tests.servicekit import (
    GatewaySim,
    free_port,
    phone_scenario,
    restart_killed,
    running_edge,
    sipp,
    sipp_calls,
    two_carriers,
    wait_for,
    wire,
)

pytestmark = pytest.mark.sip

ACCESS = "123777777"  # rings 1 s, calls back 3 s after the busy
RETRYING_ACCESS = "123888888"  # the same, and tries leg A once more 2 s after it was not answered
QUIET_ACCESS = "123999999"  # the same, and does not announce the balance


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The SIP edge and the call controller; the demo carrier reaches the caller's phone, a second
    carrier (tried first for destinations) reaches the called parties."""
    # A short repeat window: the same caller triggers again in the next tests.
    with running_edge(
        tmp_path_factory.mktemp("callback"),
        triggers_repeat_window_seconds="2",
        numbers_blocked_prefixes="1900,44909",
        rtpengine_silence_timeout_seconds="600",  # the simulated phones and destinations fall silent
    ) as settings:
        ports = {"phone": free_port(), "destination": free_port()}
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            two_carriers(session, ports["phone"], ports["destination"])
            for number in (ACCESS, RETRYING_ACCESS, QUIET_ACCESS):
                provisioning.add_access_number(
                    session, provisioning.AccessNumberSpec(number=number, ring_time_seconds=1, callback_delay_seconds=3)
                )
            session.execute(
                update(AccessNumber)
                .where(AccessNumber.number == RETRYING_ACCESS)
                .values(retry_attempts=1, retry_interval_seconds=2)
            )
            session.execute(
                update(AccessNumber).where(AccessNumber.number == QUIET_ACCESS).values(announce_balance=False)
            )
        time.sleep(5.5)  # the edge's 5 s cache of gateways and access numbers
        controller = Supervisor(settings, out=io.StringIO())
        controller.start(services.controller(settings))
        try:
            yield settings, ports, session_factory(engine), controller
        finally:
            controller.stop_all()
            engine.dispose()


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


def trigger(settings, caller: str, access: str = ACCESS) -> datetime:
    """The caller dials the access number (ringing, busy); returns when it did."""
    at = utcnow()
    assert sipp("trigger.xml", settings.sip_listen, "-s", access, "-key", "caller", "+" + caller).returncode == 0
    return at


def finished(sessions, caller: str, since: datetime) -> CallbackSession | None:
    """The callback requested at or after `since`, once it is over."""
    found = session_of(sessions, caller)
    if found is None or found.requested_at < since:
        return None
    return found if found.state in ("ended", "failed") else None


def legs_of(sessions, callback: CallbackSession) -> list[CallLeg]:
    with transaction(sessions) as session:
        query = select(CallLeg).where(CallLeg.session_id == callback.id).order_by(CallLeg.created_at)
        return list(session.execute(query).scalars())


def leg_a_rings(sessions, caller: str, since: datetime) -> bool:
    """The callback requested at or after `since` is ringing the caller's phone."""
    found = session_of(sessions, caller)
    return (
        found is not None
        and found.requested_at >= since
        and any(leg.status is LegStatus.RINGING for leg in legs_of(sessions, found))
    )


def known_caller(sessions, number: str) -> str:
    """`number`, made an authorized caller ID of the demo account: its callbacks skip the PIN."""
    with transaction(sessions) as session:
        provisioning.add_caller_id(session, "demo", "+" + number)
    return number


def test_pin_flow_two_destinations_then_the_saved_caller_id_skips_the_pin(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = "447700900150"
    # The phone keys its PIN and a destination ahead of the prompts (they are kept); the destination
    # answers, talks and hangs up; back at the destination prompt the caller keys a second
    # destination, which answers and hangs up too; the caller hangs up at the prompt after it.
    keys = "4321#0012025550143#|9000|00442079460123#"
    phone = GatewaySim(
        phone_scenario(tmp_path, keys, wait_ms=1000, gap_ms=150, hang_up_after_ms=14000), ports["phone"], tmp_path, 80
    )
    destination = GatewaySim("gw_answer_then_bye.xml", ports["destination"], tmp_path, 80, calls=2)
    with transaction(sessions) as session:
        balance_before = session.execute(select(Account.balance).where(Account.login == "demo")).scalar_one()

    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=80)
    assert ended is not None, session_of(sessions, caller)
    assert ended.end_reason == "caller hung up"

    code, messages = phone.finish()
    assert code == 0, messages[-3000:]
    code, messages = destination.finish()
    assert code == 0, messages[-3000:]

    with transaction(sessions) as session:
        legs = (
            session.execute(select(CallLeg).where(CallLeg.session_id == ended.id).order_by(CallLeg.created_at))
            .scalars()
            .all()
        )
        [a, b1, b2] = legs
        dialing = session.execute(
            select(LegEvent.at).where(LegEvent.leg_id == a.id, LegEvent.status == LegStatus.DIALING)
        ).scalar_one()
        saved = session.execute(select(AuthorizedCallerId).where(AuthorizedCallerId.number == caller)).scalar_one()
        cdrs = {c.leg_id: c for c in session.execute(select(Cdr).where(Cdr.session_id == ended.id)).scalars()}
        charges = (
            session.execute(
                select(LedgerEntry.amount).where(
                    LedgerEntry.kind == LedgerKind.CHARGE,
                    LedgerEntry.reference.in_([f"cdr:{leg.id}" for leg in legs]),
                )
            )
            .scalars()
            .all()
        )
        balance_after = session.execute(select(Account.balance).where(Account.login == "demo")).scalar_one()

    # Called back when promised: the due time (ring 1 s + delay 3 s after the trigger), within 1 s.
    assert abs(dialing - ended.due_at) < timedelta(seconds=1)
    assert (a.role, a.number, a.status) == (LegRole.A, caller, LegStatus.ENDED)
    assert (b1.role, b1.number, b1.status, b1.hangup_by) == (LegRole.B, "12025550143", LegStatus.ENDED, "peer")
    assert (b2.role, b2.number, b2.status, b2.hangup_by) == (LegRole.B, "442079460123", LegStatus.ENDED, "peer")
    assert b1.ended_at <= b2.answered_at  # one destination after the other, never two at once
    assert saved.origin is CallerIdOrigin.PIN  # a good PIN saved the caller ID for next time
    # One CDR per leg at its own rate, charged once each; the balance moved by exactly their costs.
    assert set(cdrs) == {a.id, b1.id, b2.id}
    assert [cdrs[leg.id].price_per_minute for leg in legs] == [Decimal("0.10"), Decimal("0.05"), Decimal("0.10")]
    assert sorted(-amount for amount in charges) == sorted(c.cost for c in cdrs.values() if c.cost)
    assert balance_after == balance_before - sum(c.cost for c in cdrs.values())

    # The next trigger from the same number skips the PIN: had it been asked, the destination's
    # digits would have been taken for a (wrong) PIN.
    phone = GatewaySim(
        phone_scenario(tmp_path, "0012025550143#", wait_ms=1000, gap_ms=150, hang_up_after_ms=8000),
        ports["phone"], tmp_path, 60,
    )  # fmt: skip
    destination = GatewaySim("gw_answer_then_bye.xml", ports["destination"], tmp_path, 60)
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    for sim in (phone, destination):
        code, messages = sim.finish()
        assert code == 0, messages[-3000:]
    assert [(leg.role, leg.number) for leg in legs_of(sessions, ended)] == [
        (LegRole.A, caller),
        (LegRole.B, "12025550143"),
    ]


def test_keys_by_sip_info_are_heard_and_the_destinations_keys_are_not(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = "447700900161"
    # The phone keys its PIN and the destination as SIP INFO; the destination presses #11 (INFO)
    # a moment after answering, which must not end it: only the user's keys count.
    phone = GatewaySim(
        phone_scenario(tmp_path, "4321#0012025550143#", wait_ms=1000, gap_ms=150, hang_up_after_ms=9000, dtmf="info"),
        ports["phone"], tmp_path, 60,
    )  # fmt: skip
    destination = GatewaySim("gw_answer_keys_hash11_info.xml", ports["destination"], tmp_path, 60)
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    for sim in (phone, destination):
        code, messages = sim.finish()
        assert code == 0, messages[-3000:]
    a, b = legs_of(sessions, ended)
    assert (a.number, b.number) == (caller, "12025550143")
    assert b.hangup_cause != "#11" and b.ended_at - b.answered_at > timedelta(seconds=3)
    with transaction(sessions) as session:
        saved = session.execute(select(AuthorizedCallerId).where(AuthorizedCallerId.number == caller)).scalar_one()
    assert saved.origin is CallerIdOrigin.PIN  # the PIN keyed by INFO was taken


def test_the_caller_hears_the_prompts_spoken_in_the_accounts_language(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = "447700900190"
    with transaction(sessions) as session:
        spec = provisioning.AccountSpec(login="cliente", currency="USD", tariff="demo", language="es")
        provisioning.create_account(session, spec)
        provisioning.top_up(session, "cliente", Decimal("5.00"), reference="cliente:credit")
        provisioning.add_caller_id(session, "cliente", "+" + caller)
    # The phone's answer names our listener's port: what arrives there is what its user would hear.
    listening_port = free_port()
    listener = RtpListener(listening_port)
    phone = GatewaySim(
        phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=6000, listen_on=listening_port),
        ports["phone"], tmp_path, 60,
    )  # fmt: skip
    since = trigger(settings, caller, QUIET_ACCESS)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    listener.stop()
    assert ended is not None and ended.end_reason == "caller hung up"
    assert phone.finish()[0] == 0

    heard = listener.samples()
    spanish = SpeechCache(settings.paths_var_dir / "prompts").path_for(sentence(Prompt.ENTER_DESTINATION, "es"), "es")
    english = asyncio.run(SpeechCache(tmp_path / "en").render(sentence(Prompt.ENTER_DESTINATION, "en"), "en"))
    assert voiced_seconds(heard) > 1.0  # speech, not silence
    assert similarity(heard, wav_samples(spanish)) > 0.9  # the Spanish destination prompt, from its start
    assert similarity(heard, wav_samples(english)) < 0.5


def test_three_wrong_pins_end_the_call_and_bill_nothing(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = "447700900151"  # unknown
    phone = GatewaySim(
        phone_scenario(tmp_path, "1111#2222#3333#", wait_ms=1000, gap_ms=150), ports["phone"], tmp_path, 60
    )
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "not authorized"
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]  # the platform hung up on it
    assert [leg.role for leg in legs_of(sessions, ended)] == [LegRole.A]
    with transaction(sessions) as session:
        assert session.execute(select(Cdr).where(Cdr.session_id == ended.id)).first() is None
        assert session.execute(select(AuthorizedCallerId).where(AuthorizedCallerId.number == caller)).first() is None


def test_hash_11_ends_the_destination_and_returns_to_the_prompt(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = known_caller(sessions, "447700900152")
    phone = GatewaySim(
        phone_scenario(tmp_path, "0012025550143#|9000|#11", wait_ms=1000, gap_ms=150, hang_up_after_ms=6000),
        ports["phone"], tmp_path, 60,
    )  # fmt: skip
    destination = GatewaySim("gw_answer.xml", ports["destination"], tmp_path, 60)  # waits for our BYE
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    assert phone.finish()[0] == 0 and destination.finish()[0] == 0
    a, b = legs_of(sessions, ended)
    assert (b.hangup_by, b.hangup_cause) == ("party", "#11")
    assert b.ended_at < a.ended_at - timedelta(seconds=3)  # A stayed on after #11


def test_leg_b_busy_gets_a_prompt_and_another_try(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = known_caller(sessions, "447700900153")
    phone = GatewaySim(
        phone_scenario(tmp_path, "0012025550143#", wait_ms=1000, gap_ms=150, hang_up_after_ms=9000),
        ports["phone"], tmp_path, 60,
    )  # fmt: skip
    destination = GatewaySim("gw_busy.xml", ports["destination"], tmp_path, 60)
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"  # not cut off by the busy
    for sim in (phone, destination):
        code, messages = sim.finish()
        assert code == 0, messages[-3000:]
    a, b = legs_of(sessions, ended)
    assert (b.status, b.sip_code) == (LegStatus.BUSY, 486)
    assert a.ended_at - b.ended_at > timedelta(seconds=5)  # A was asked for another destination
    with transaction(sessions) as session:
        assert session.execute(select(Cdr).where(Cdr.leg_id == b.id)).first() is None  # busy costs nothing


def test_a_blocked_destination_gets_a_prompt_and_another_try(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = known_caller(sessions, "447700900155")
    phone = GatewaySim(
        phone_scenario(tmp_path, "0019005550100#|3000|0012025550143#", wait_ms=1000, gap_ms=150, hang_up_after_ms=9000),
        ports["phone"], tmp_path, 60,
    )  # fmt: skip
    destination = GatewaySim("gw_answer_then_bye.xml", ports["destination"], tmp_path, 60)  # one call only
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    for sim in (phone, destination):
        code, messages = sim.finish()
        assert code == 0, messages[-3000:]
    # The premium-rate number (1900...) was never dialled; the next one was.
    assert [(leg.role, leg.number) for leg in legs_of(sessions, ended)] == [
        (LegRole.A, caller),
        (LegRole.B, "12025550143"),
    ]


def test_a_callback_requested_while_the_controller_is_down_is_placed_when_it_starts(platform, tmp_path):
    settings, ports, sessions, controller = platform
    caller = known_caller(sessions, "447700900154")
    controller.stop_all()
    since = trigger(settings, caller)
    time.sleep(5)  # past the callback's due time, with no controller running
    assert session_of(sessions, caller).state == "requested"
    phone = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=3000), ports["phone"], tmp_path, 60)
    controller.start(services.controller(settings))
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]
    [a] = legs_of(sessions, ended)
    assert a.answered_at is not None


def test_a_call_is_cut_when_the_credit_runs_out_and_nothing_is_overdrawn(platform, tmp_path):
    """30 cents: leg A (UK, 0.10/min by the minute) and leg B (US, 0.05/min, 30/6) together run out
    in about two minutes; the caller is warned, B is cut, the account ends at or above zero."""
    settings, ports, sessions, _ = platform
    caller = "447700900160"
    with transaction(sessions) as session:
        provisioning.create_account(session, provisioning.AccountSpec(login="short", currency="USD", tariff="demo"))
        provisioning.set_pin(session, settings.secret_key(), "short", "9999")
        provisioning.top_up(session, "short", Decimal("0.30"), reference="short:credit")
    phone = GatewaySim(phone_scenario(tmp_path, "9999#0012025550143#", wait_ms=1000, gap_ms=150), ports["phone"],
                       tmp_path, 300)  # fmt: skip
    destination = GatewaySim("gw_answer_long.xml", ports["destination"], tmp_path, 300)
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=280)
    assert ended is not None and ended.end_reason == "out of credit"
    for sim in (phone, destination):
        code, messages = sim.finish()
        assert code == 0, messages[-3000:]  # the platform hung up on both
    a, b = legs_of(sessions, ended)
    assert (b.hangup_by, b.hangup_cause) == ("platform", "out of credit")
    talked = (b.ended_at - b.answered_at).total_seconds()
    assert 60 < talked < 150
    with transaction(sessions) as session:
        balance = session.execute(select(Account.balance).where(Account.login == "short")).scalar_one()
        costs = session.execute(select(Cdr.cost).where(Cdr.session_id == ended.id)).scalars().all()
    assert balance >= 0  # no overdraft: the credit limit is zero
    assert balance == Decimal("0.30") - sum(costs) and len(costs) == 2


def test_an_unanswered_callback_is_recorded_and_tried_again_per_the_access_numbers_policy(platform, tmp_path):
    settings, ports, sessions, _ = platform
    caller = "447700900170"
    busy = GatewaySim("gw_busy.xml", ports["phone"], tmp_path, 60)
    since = trigger(settings, caller, RETRYING_ACCESS)
    assert busy.finish()[0] == 0  # the first callback found the phone busy
    answering = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=2000), ports["phone"], tmp_path, 60)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    assert answering.finish()[0] == 0
    first, second = legs_of(sessions, ended)
    assert (first.role, first.status, first.sip_code) == (LegRole.A, LegStatus.BUSY, 486)
    assert second.role is LegRole.A and second.answered_at is not None
    assert second.created_at - first.ended_at >= timedelta(seconds=2)  # the retry interval
    assert ended.attempts == 2


def test_a_killed_controller_leaves_no_call_up_and_no_leg_unbilled(platform, tmp_path):
    settings, ports, sessions, controller = platform
    caller = known_caller(sessions, "447700900180")  # no PIN: straight to the destination prompt, where it waits
    phone = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0), ports["phone"], tmp_path, 60)
    since = trigger(settings, caller)
    up = wait_for(lambda: (s := session_of(sessions, caller)) and s.requested_at >= since
                  and s.state == "asking_destination", timeout=30)  # fmt: skip
    assert up
    killed_at = kill_and_restart(settings, controller, "controller")  # killed: no chance to clean up
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=30)
    assert ended is not None and ended.end_reason == "controller restarted"
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]  # the restarted controller hung the phone up
    [a] = legs_of(sessions, ended)
    with transaction(sessions) as session:
        cdr = session.execute(select(Cdr).where(Cdr.leg_id == a.id)).scalar_one()
    assert cdr.duration_seconds >= 1 and a.status is LegStatus.ENDED
    seen = wire(phone.trace)[a.sip_call_id]
    assert (seen.bye - killed_at).total_seconds() <= 10  # no leg left up without its controller
    assert cdr.duration_seconds <= (seen.bye - seen.answered).total_seconds() + 2  # nothing billed past the wire


def alerts(settings, alert: str) -> int:
    with urllib.request.urlopen(f"http://{settings.metrics_listen}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf'^boomerang_alerts_total{{alert="{alert}"}} (\d+)', text, re.M)
    return int(found.group(1)) if found else 0


def test_callers_nothing_rates_are_not_called_or_billed_and_the_controller_carries_on(platform, tmp_path):
    settings, ports, sessions, controller = platform
    # An authorized caller ID in a country the tariff does not rate: not called back at all.
    unrated = known_caller(sessions, "33612345678")
    since = trigger(settings, unrated)
    ended = wait_for(lambda: finished(sessions, unrated, since), timeout=20)
    assert ended is not None and ended.end_reason == "refused: no_rate"
    assert [leg.status for leg in legs_of(sessions, ended)] == [LegStatus.CANCELLED]  # never dialled
    # A PIN caller from there: called (nobody knew who pays), told, hung up, and nobody billed.
    caller = "33612345679"
    phone = GatewaySim(phone_scenario(tmp_path, "4321#", wait_ms=1000, gap_ms=150), ports["phone"], tmp_path, 60)
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "leg A refused by credit control"
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]  # the platform hung up
    with transaction(sessions) as session:
        assert session.execute(select(Cdr).where(Cdr.session_id == ended.id)).first() is None
        assert session.get(CallbackSession, ended.id).account_id is None


# --- faults: each process killed (kill -9) while a callback is pending, ringing or in the IVR ----------
# (bridged calls through each restart: tests/test_credit_on_the_wire.py)

KILLED = ["controller", "kamailio", "rtpengine"]


def kill_and_restart(settings, controller, name: str, down_seconds: float = 0) -> datetime:
    """kill -9 of one process, started again after `down_seconds` as `boomerang run` would; the
    platform answers OPTIONS again within 10 s. Returns when it was killed."""
    killed_at = utcnow()
    restart_killed(settings, name, meanwhile=lambda: time.sleep(down_seconds),
                   supervisor=controller if name == "controller" else None)  # fmt: skip
    assert wait_for(lambda: probes.sip_options(settings.sip_listen, timeout=0.5) == 200, timeout=10)
    return killed_at


@pytest.mark.parametrize("killed", KILLED)
def test_a_callback_due_while_a_process_is_down_is_placed_once_it_is_back(platform, tmp_path, killed):
    """Killed just after the trigger, and down for 5 s: the callback falls due meanwhile, and is
    placed once, by the restarted process."""
    settings, ports, sessions, controller = platform
    caller = known_caller(sessions, f"44770090041{KILLED.index(killed)}")
    phone = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=2000), ports["phone"], tmp_path, 60)
    since = trigger(settings, caller)
    kill_and_restart(settings, controller, killed, down_seconds=5)  # due 3 s after the busy
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=40)
    assert ended is not None and ended.end_reason == "caller hung up"
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]
    assert [leg.role for leg in legs_of(sessions, ended)] == [LegRole.A]  # called once


@pytest.mark.parametrize("killed", ["kamailio", "rtpengine"])
def test_a_caller_in_the_ivr_goes_on_through_a_restart_of_kamailio_or_rtpengine(platform, tmp_path, killed):
    """Killed while the caller hears the destination prompt: the caller keys the destination after
    the restart, is bridged, talks and hangs up; each leg billed to its time on the wire."""
    settings, ports, sessions, controller = platform
    caller = known_caller(sessions, f"44770090042{KILLED.index(killed)}")
    phone = GatewaySim(phone_scenario(tmp_path, "0012025550143#", wait_ms=9000, gap_ms=150, hang_up_after_ms=4000),
                       ports["phone"], tmp_path, 90)  # fmt: skip
    destination = GatewaySim("gw_answer_long.xml", ports["destination"], tmp_path, 90)
    since = trigger(settings, caller)
    assert wait_for(lambda: (s := session_of(sessions, caller)) and s.requested_at >= since
                    and s.state == "asking_destination", timeout=30)  # fmt: skip
    kill_and_restart(settings, controller, killed)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    for party in (phone, destination):
        code, messages = party.finish()
        assert code == 0, messages[-3000:]
    a, b = legs_of(sessions, ended)
    assert (a.role, b.role, b.number) == (LegRole.A, LegRole.B, "12025550143")
    on_wire = wire(phone.trace) | wire(destination.trace)
    with transaction(sessions) as session:
        cdrs = {cdr.leg_id: cdr for cdr in session.execute(select(Cdr).where(Cdr.session_id == ended.id)).scalars()}
    for leg in (a, b):
        seen = on_wire[leg.sip_call_id]
        assert abs(cdrs[leg.id].duration_seconds - (seen.ended - seen.answered).total_seconds()) <= 2


def test_a_callback_ringing_when_the_controller_dies_is_cancelled_at_once(platform, tmp_path):
    settings, ports, sessions, controller = platform
    caller = known_caller(sessions, "447700900430")
    phone = GatewaySim("gw_ring_until_cancel.xml", ports["phone"], tmp_path, 60)
    since = trigger(settings, caller)
    assert wait_for(lambda: leg_a_rings(sessions, caller, since), timeout=30)
    killed_at = kill_and_restart(settings, controller, "controller")
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]  # the phone got our CANCEL
    [call] = sipp_calls(phone.trace).values()
    assert call.answered is None and (call.cancelled - killed_at).total_seconds() <= 10
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=20)
    assert ended is not None and ended.end_reason == "controller restarted"


def test_a_callback_ringing_when_kamailio_dies_fails_at_once_not_at_the_ring_timeout(platform, tmp_path):
    """The restarted Kamailio never heard of the ringing leg A (its INVITE left the old one, which
    took the transaction with it): the controller learns so when the link is back and ends the
    callback as not answered within seconds, instead of waiting out the 40 s ring time."""
    settings, ports, sessions, controller = platform
    caller = known_caller(sessions, "447700900431")
    phone = GatewaySim("gw_ring_until_cancel.xml", ports["phone"], tmp_path, 60)
    try:
        since = trigger(settings, caller)
        assert wait_for(lambda: leg_a_rings(sessions, caller, since), timeout=30)
        killed_at = kill_and_restart(settings, controller, "kamailio")
        ended = wait_for(lambda: finished(sessions, caller, since), timeout=20)
        assert ended is not None and ended.end_reason == "leg A not answered"
        assert (ended.ended_at - killed_at).total_seconds() < 15
    finally:
        phone.stop()  # it rings on: the transaction that could have cancelled it died with Kamailio


def test_a_leg_left_unrated_by_an_older_controller_is_closed_at_no_cost_and_the_controller_starts(platform, tmp_path):
    """A session a controller left as it died: leg A answered, its account without a tariff, no
    reservation. The next controller closes it with a CDR at no cost, raises the alarm, and runs."""
    settings, _, sessions, controller = platform
    answered = utcnow() - timedelta(seconds=40)
    with transaction(sessions) as session:
        spec = provisioning.AccountSpec(login="untariffed", currency="USD", tariff=None)
        account_id = provisioning.create_account(session, spec).id
        wedged = CallbackSession(kind=CallbackKind.ACCESS, account_id=account_id, caller_number="447700900190",
                                 state="authorizing", due_at=answered, requested_at=answered)  # fmt: skip
        session.add(wedged)
        session.flush()
        leg = CallLeg(session_id=wedged.id, role=LegRole.A, number="447700900190", status=LegStatus.ANSWERED,
                      answered_at=answered, alive_at=answered + timedelta(seconds=12))  # fmt: skip
        session.add(leg)
        session.flush()
        wedged_id, leg_id = wedged.id, leg.id
    raised = alerts(settings, "unrated_leg")
    restart_killed(settings, "controller", supervisor=controller)
    closed = wait_for(lambda: (s := session_of(sessions, "447700900190")) and s.state == "ended" and s, timeout=20)
    assert closed and closed.id == wedged_id and closed.end_reason == "controller restarted"
    with transaction(sessions) as session:
        cdr = session.execute(select(Cdr).where(Cdr.leg_id == leg_id)).scalar_one()
    assert (cdr.cost, cdr.unrated_reason, cdr.duration_seconds) == (Decimal(0), "no_rate", 12)  # to its heartbeat
    assert wait_for(lambda: alerts(settings, "unrated_leg") == raised + 1, timeout=10)
    # And it runs: a caller is called back as usual.
    restart_killed(settings, "controller", supervisor=controller)  # and starts again, with nothing left to close
    caller = known_caller(sessions, "447700900191")
    phone = GatewaySim(phone_scenario(tmp_path, "", wait_ms=0, hang_up_after_ms=2000), platform[1]["phone"],
                       tmp_path, 60)  # fmt: skip
    since = trigger(settings, caller)
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=40)
    assert ended is not None and ended.end_reason == "caller hung up"
    assert phone.finish()[0] == 0


def test_a_hang_up_while_the_database_is_stalled_still_ends_and_bills_the_call(platform, tmp_path):
    """The phone hangs up while another process holds SQLite's write lock for 40 s, longer than the
    controller waits for it (30 s): the destination is hung up at once all the same, and once the
    database is back the call is recorded as it happened and billed once."""
    settings, ports, sessions, _ = platform
    caller = known_caller(sessions, "447700900195")
    phone = GatewaySim(phone_scenario(tmp_path, "0012025550143#", wait_ms=1000, gap_ms=150, hang_up_after_ms=6000),
                       ports["phone"], tmp_path, 120)  # fmt: skip
    destination = GatewaySim("gw_answer_long.xml", ports["destination"], tmp_path, 120)
    since = trigger(settings, caller)
    assert wait_for(lambda: (s := session_of(sessions, caller)) and s.requested_at >= since and s.state == "bridged",
                    timeout=40)  # fmt: skip
    stall = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    stall.execute("BEGIN EXCLUSIVE")
    stalled_at = time.monotonic()
    try:
        code, messages = destination.finish()  # its BYE comes while the database is locked
        assert code == 0, messages[-3000:]
        assert time.monotonic() - stalled_at < 15
        assert phone.finish()[0] == 0
        time.sleep(max(40 - (time.monotonic() - stalled_at), 0))
    finally:
        stall.execute("ROLLBACK")
        stall.close()
    ended = wait_for(lambda: finished(sessions, caller, since), timeout=60)
    assert ended is not None and ended.end_reason == "caller hung up"
    a, b = legs_of(sessions, ended)
    with transaction(sessions) as session:
        cdrs = {c.leg_id: c for c in session.execute(select(Cdr).where(Cdr.session_id == ended.id)).scalars()}
        charges = session.execute(
            select(func.count()).where(LedgerEntry.reference.in_([f"cdr:{a.id}", f"cdr:{b.id}"]))
        ).scalar_one()
    assert set(cdrs) == {a.id, b.id} and charges == 2
    for leg in (a, b):  # billed to when it ended on the wire, not to when the database came back
        assert (leg.ended_at - leg.answered_at).total_seconds() < 20
        assert cdrs[leg.id].duration_seconds < 20
