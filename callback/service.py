"""The call controller's process: links to Kamailio and rtpengine, the scheduler of due callbacks,
and the routing of each event to the callback session it belongs to.

The database is the state of record: a callback request is a `callback_sessions` row written by the
SIP edge; the scheduler claims due rows (one controller each), so a request made while no controller
ran is placed when one starts. At start-up a bridged call a stopped controller left is taken back
if it is still up (`callback/resumed.py`); any other session a restart cut is closed, its legs hung
up, and settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from boomerang.settings import READY_FD_ENV, Settings, load
from boomerang.store.types import utcnow
from callback.connect_two import ConnectTwo
from callback.evapi import KamailioChannel
from callback.flow import CANCELLED, MEDIA_LOST, CallbackFlow, Links, State
from callback.media import A, dtmf_digit
from callback.ng import NgClient
from callback.regular import RegularCallback
from callback.resumed import ResumedCall
from callback.sms import SmsDesk
from callback.sms_store import SmsStore
from callback.speech import SpeechCache, ringback_tone
from callback.store import HEARTBEAT_SECONDS, BridgedCall, CallbackStore

log = logging.getLogger("callback")

HEARTBEAT_INTERVAL = 5.0
LEG_STATE_WAIT_SECONDS = 2.0
MEDIA_LIST_LIMIT = 100000  # more calls than any rtpengine of ours holds
SCHEDULER_MAX_SLEEP = 1.0


class Controller:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kamailio = KamailioChannel(settings.controller_evapi_listen, on_message=self._on_kamailio)
        self.kamailio.connect_listeners.append(self._reteach_kamailio)
        self.rtpengine = NgClient(settings.rtpengine_ng_tcp_listen, on_notify=self._on_rtpengine)
        self.store = CallbackStore(settings)
        self.speech = SpeechCache(settings.paths_var_dir / "prompts")
        self.sessions: dict[str, CallbackFlow] = {}
        self._wake = asyncio.Event()
        self._noting: set[asyncio.Future] = set()  # records being written, referenced till done
        self._leg_states: dict[str, asyncio.Future] = {}  # legs asked about, by leg id
        self.sms = SmsDesk(SmsStore(self.store, settings.numbers_blocked_prefixes), self.kamailio, self._wake.set)

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.kamailio.run())
                tasks.create_task(self.rtpengine.run())
                await self._wait_connected()
                links = Links(
                    self.kamailio, self.rtpengine, self.speech, self.store,
                    await ringback_tone(self.settings.paths_var_dir / "prompts"),
                    self.settings.numbers_blocked_prefixes,
                )  # fmt: skip
                taken_back = await self._take_back(links)
                interrupted, unrated = await asyncio.to_thread(self.store.recover, utcnow(), taken_back)
                for leg in interrupted:
                    log.warning("leg %s was placed when the controller stopped: hung up and settled", leg)
                    self.kamailio.send({"type": "hangup", "leg": leg})
                for leg in unrated:
                    log.warning("leg %s could not be rated: recorded at no cost", leg)
                    self.kamailio.send({"type": "alert", "alert": "unrated_leg"})
                _report_ready()
                tasks.create_task(self._heartbeat())
                tasks.create_task(self._legs_alive())
                tasks.create_task(self._schedule(links))
                tasks.create_task(self.sms.run())
        finally:
            self.store.close()

    async def _wait_connected(self) -> None:
        await self.kamailio.connected.wait()
        await self.rtpengine.connected.wait()
        await self.rtpengine.request("ping")
        await self.kamailio.ping()
        log.info("call controller ready")

    # --- calls a stopped controller left ----------------------------------------------------------

    async def _take_back(self, links: Links) -> frozenset[str]:
        """The bridged calls a stopped controller left that are still up, at Kamailio (both legs)
        and in rtpengine (their media), run on by this one (`callback/resumed.py`)."""
        taken = set()
        for call in await asyncio.to_thread(self.store.bridged_calls):
            if await self._still_up(call):
                log.info("callback %s: bridged when the controller stopped, taken back", call.due.session_id)
                self._run_flow(ResumedCall(call, links), call.due.session_id)
                taken.add(call.due.session_id)
        return frozenset(taken)

    async def _still_up(self, call: BridgedCall) -> bool:
        try:
            await self.rtpengine.request("query", **{"call-id": call.due.session_id})
        except Exception:  # rtpengine lost its media: the call cannot go on
            return False
        states = await asyncio.gather(*(self._leg_state(leg.id) for leg in (call.a, call.b)))
        return states == ["answered", "answered"]

    async def _leg_state(self, leg: str) -> str:
        """How Kamailio holds a leg: "answered", "calling", or "gone" (also when it does not say)."""
        answer = self._leg_states[leg] = asyncio.get_running_loop().create_future()
        self.kamailio.send({"type": "leg_state", "leg": leg})
        try:
            return await asyncio.wait_for(answer, LEG_STATE_WAIT_SECONDS)
        except TimeoutError:
            return "gone"
        finally:
            self._leg_states.pop(leg, None)

    def _lost_while_ringing(self, leg: str) -> None:
        for flow in self.sessions.values():
            if flow.owns(leg) and leg in flow.ringing_legs():
                log.warning("leg %s was ringing through a Kamailio that restarted: failed", leg)
                flow.on_leg_event({"type": "leg_failed", "leg": leg, "code": 503, "reason": "lost with Kamailio"})

    def _end_without_media(self, missing: set[str]) -> None:
        """Sessions whose media rtpengine held before it was asked, and does not list (it
        restarted), are dead air for both parties: each is ended, its legs hung up and billed to now."""
        for session_id in missing:
            flow = self.sessions.get(session_id)
            if flow is not None and flow.media.held and flow.task and not flow.finishing:
                log.warning("callback %s: rtpengine lost its media: ended", session_id)
                flow.task.cancel(MEDIA_LOST)

    async def _delete_orphans(self, calls: set[str], seen_before: set[str]) -> set[str]:
        """rtpengine's calls that no session runs (left by a controller that stopped, or by a delete
        that failed) hold ports until its silence timeout: each one seen at two heartbeats in a row
        is deleted. Returns the calls seen without a session this time."""
        orphans = {call for call in calls if call not in self.sessions}
        for call in orphans & seen_before:
            log.warning("media call %s belongs to no callback session: deleted", call)
            with contextlib.suppress(Exception):
                await self.rtpengine.request("delete", **{"call-id": call, "delete-delay": 0})
            calls.discard(call)
        return orphans - seen_before

    def _reteach_kamailio(self) -> None:
        """Each time the link to Kamailio comes back, teach it the legs up (their dialogs, their
        deadlines): a Kamailio that restarted holds none, and would answer their BYEs 481 and leave
        them up at the far end. One that only lost the connection keeps what it holds. Legs still
        ringing are asked after: one a restarted Kamailio never heard of has failed (its answer, if
        the far end gives one, is hung up as a stray), and its flow goes on without waiting for it."""
        for flow in list(self.sessions.values()):
            with contextlib.suppress(ConnectionError):
                for leg, dialog, seconds in flow.dialogs():
                    self.kamailio.send({"type": "adopt", "leg": leg, "dialog": dialog, "seconds": seconds})
                for leg in flow.ringing_legs():
                    self.kamailio.send({"type": "leg_state", "leg": leg})

    # --- due callbacks --------------------------------------------------------------------------------

    async def _schedule(self, links: Links) -> None:
        """Start each callback when it is due: woken by a new request, else at the next due time.
        Nothing is claimed while Kamailio or rtpengine is away (restarting): a callback due meanwhile
        waits for them in the database rather than fail for want of them."""
        while True:
            await self.kamailio.connected.wait()
            await self.rtpengine.connected.wait()
            for due in await asyncio.to_thread(self.store.claim_due, utcnow(), State.CALLING_A.value):
                flow = ConnectTwo(due, links) if due.connect_two else RegularCallback(due, links)
                self._run_flow(flow, due.session_id)
            for session_id in await asyncio.to_thread(self.store.cancel_requested, list(self.sessions)):
                flow = self.sessions.get(session_id)
                if flow is not None and flow.task is not None and not flow.cancelling and not flow.finishing:
                    flow.cancelling = True
                    flow.task.cancel(CANCELLED)
            next_due = await asyncio.to_thread(self.store.next_due_at)
            sleep = SCHEDULER_MAX_SLEEP
            if next_due is not None:
                sleep = min(max((next_due - utcnow()).total_seconds(), 0.01), SCHEDULER_MAX_SLEEP)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)

    def _run_flow(self, flow: CallbackFlow, session_id: str) -> None:
        self.sessions[session_id] = flow
        task = asyncio.create_task(flow.run(), name=f"callback {session_id}")
        task.add_done_callback(lambda _: self.sessions.pop(session_id, None))

    # --- events ------------------------------------------------------------------------------------------

    def _on_kamailio(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "callback_request":
            self._wake.set()
            return
        if kind == "sms_received":
            self.sms.notify()
            return
        if kind == "sms_result":
            self.sms.on_result(message)
            return
        if kind == "leg_state":
            answer = self._leg_states.get(str(message.get("leg")))
            if answer is not None and not answer.done():
                answer.set_result(str(message.get("state")))
            elif message.get("state") == "gone":  # asked after a reconnect: the leg died with Kamailio
                self._lost_while_ringing(str(message.get("leg")))
            return
        leg = message.get("leg")
        if leg is None:
            return
        if kind == "leg_late_answer":  # Kamailio hung it up at once; whether or not a flow still runs it
            note = "answered after it was cancelled: hung up at once"
            noting = asyncio.ensure_future(asyncio.to_thread(self.store.leg_note, str(leg), note, utcnow()))
            self._noting.add(noting)
            noting.add_done_callback(self._noting.discard)
        for flow in self.sessions.values():
            if flow.owns(leg):
                if kind == "leg_dtmf":  # SIP INFO digits; B's are ignored
                    if flow.a is not None and leg == flow.a.id:
                        flow.on_digit(str(message.get("digit", "")))
                else:
                    flow.on_leg_event(message)
                return

    def _on_rtpengine(self, notification: dict) -> None:
        found = dtmf_digit(notification)
        if found is None:
            return
        call_id, party, digit = found
        flow = self.sessions.get(call_id)
        if flow is not None and party == A:  # digits from leg B are ignored
            flow.on_digit(digit)

    async def _legs_alive(self) -> None:
        """Record, every few seconds, that the legs up are up: a restart bills them to here."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            legs = [leg for flow in list(self.sessions.values()) for leg in flow.up_legs()]
            try:
                await asyncio.to_thread(self.store.mark_alive, legs, utcnow())
            except Exception:
                log.exception("the heartbeat of %d legs could not be recorded", len(legs))

    async def _heartbeat(self) -> None:
        """Check that both engines still answer, and say so in the log when one does not; report
        the sessions running and the calls rtpengine holds (metrics, served by Kamailio)."""
        orphans: set[str] = set()
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            media_calls = -1
            try:
                held = {session_id for session_id, flow in self.sessions.items() if flow.media.held}
                calls = set((await self.rtpengine.request("list", limit=MEDIA_LIST_LIMIT)).get("calls", []))
                self._end_without_media(held - calls)
                orphans = await self._delete_orphans(calls, orphans)
                media_calls = len(calls)
            except Exception as exc:  # down, slow or refusing: the count is not known
                log.warning("rtpengine did not answer the heartbeat: %r", exc)
            try:
                await self.kamailio.ping()
                self.kamailio.send({"type": "gauges", "sessions": len(self.sessions), "media_calls": media_calls})
            except (TimeoutError, ConnectionError) as exc:
                log.warning("kamailio did not answer the heartbeat: %r", exc)


def _report_ready() -> None:
    """Tell `boomerang run` (if it started us) that we are up."""
    fd = os.environ.get(READY_FD_ENV)
    if fd:
        with contextlib.suppress(OSError):
            os.write(int(fd), b"ready\n")
            os.close(int(fd))


def main() -> int:
    settings = load()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        running = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, running.cancel)
        try:
            await Controller(settings).run()
        except asyncio.CancelledError:
            log.info("call controller stopped")

    asyncio.run(serve())
    return 0
