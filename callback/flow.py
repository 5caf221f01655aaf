"""What every callback flow shares: its legs and their events, prompts to leg A, placing and
bridging leg B, keeping credit for the legs that are up, and the end (legs hung up, media deleted,
every leg settled). The flows themselves (`callback/regular.py`, `callback/connect_two.py`) are
explicit state machines built on it; each state is written to the session row as it is entered, so
the portal and a restarted controller see where a callback stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from boomerang.numbers import PrefixList
from boomerang.store.models import LegRole, LegStatus
from boomerang.store.types import utcnow
from callback.credit_desk import CreditDesk
from callback.digits import DigitCollector
from callback.media import MediaSession
from callback.prompts import Prompt, duration_words, language_of, sentence
from callback.speech import SpeechCache
from callback.store import AccountView, CallbackStore, DueCallback
from rating.decisions import Reason

log = logging.getLogger(__name__)


class State(StrEnum):
    CALLING_A = "calling_a"
    AUTHORIZING = "authorizing"
    ASKING_DESTINATION = "asking_destination"
    CALLING_B = "calling_b"
    BRIDGED = "bridged"
    ENDED = "ended"
    FAILED = "failed"


# Timeouts: every wait has one, so no session can hang.
A_RING_SECONDS = 40
B_RING_SECONDS = 60
PIN_ATTEMPTS = 3
DESTINATION_ATTEMPTS = 3
PIN_MAX_DIGITS = 12
DESTINATION_MAX_DIGITS = 20
EXTEND_BEFORE_SECONDS = 20  # extend a reservation this long before its grant runs out
WARN_BEFORE_SECONDS = 60  # "you have one minute left"

REFUSAL_PROMPTS = {
    Reason.NO_RATE: Prompt.NO_RATE,
    Reason.INSUFFICIENT_CREDIT: Prompt.INSUFFICIENT_CREDIT,
    Reason.ACCOUNT_SUSPENDED: Prompt.ACCOUNT_UNAVAILABLE,
    Reason.TOO_MANY_CALLS: Prompt.ACCOUNT_UNAVAILABLE,
}
# How an unanswered leg is recorded and announced, by final code. 487: we gave up after our ring
# timeout and cancelled it (nobody else cancels our legs): the called party did not answer.
FAILURE_STATUSES = {
    486: LegStatus.BUSY,
    600: LegStatus.BUSY,
    408: LegStatus.NO_ANSWER,
    480: LegStatus.NO_ANSWER,
    487: LegStatus.NO_ANSWER,
}
FAILURE_PROMPTS = {LegStatus.BUSY: Prompt.BUSY, LegStatus.NO_ANSWER: Prompt.NO_ANSWER}


def failure_status(code: int | None) -> LegStatus:
    return FAILURE_STATUSES.get(code, LegStatus.FAILED)


class LegGone(Exception):
    """Leg A hung up: the session is over."""


OUT_OF_CREDIT = "out of credit"  # the cancel message of a session cut because its credit ran out
CANCELLED = "cancelled"  # the cancel message of a session whose requester asked to stop it


class Links:
    """What a session needs from the controller: sending to Kamailio, rtpengine, prompts, storage."""

    def __init__(
        self, kamailio, ng, speech: SpeechCache, store: CallbackStore, ringback: Path, blocked: PrefixList
    ) -> None:
        self.kamailio = kamailio
        self.ng = ng
        self.speech = speech
        self.store = store
        self.credit = CreditDesk(store)  # reserve and settle, batched across the calls
        self.ringback = ringback
        self.blocked = blocked  # destinations nobody may call


class CallbackFlow:
    """One callback session; subclasses give `_flow`, the states from leg A's answer on."""

    announce_max_duration = True  # "you can talk for N minutes" before leg B is dialled

    def __init__(self, due: DueCallback, links: Links) -> None:
        self.due = due
        self.links = links
        self.store = links.store
        self.keypad = DigitCollector()
        self.media = MediaSession(links.ng, due.session_id)
        self.language = language_of(due.access.language if due.access else None)
        self.account: AccountView | None = None
        self.a_leg: str | None = None
        self.b_leg: str | None = None
        self.b_sequence = 0
        self._events: dict[str, asyncio.Queue] = {}
        self.state: State | None = None
        self.task: asyncio.Task | None = None
        self.cancelling = False  # its requester asked to stop it; the flow task was cancelled
        self._a_answered = 0.0
        self._granted: dict[str, tuple[float, int]] = {}  # leg -> (answered, seconds granted)
        self._credit_changed = asyncio.Event()
        self._credit_keeper: asyncio.Future | None = None

    # --- plumbing ---------------------------------------------------------------------------------

    def legs(self) -> list[str]:
        return [leg for leg in (self.a_leg, self.b_leg) if leg]

    def on_leg_event(self, event: dict) -> None:
        queue = self._events.get(event["leg"])
        if queue is not None:
            queue.put_nowait(event)
        if (
            event["leg"] == self.a_leg
            and event["type"] in ("leg_ended", "leg_failed")
            and self.state
            not in (
                State.CALLING_A,
                None,
            )
        ):
            if self.task is not None:
                self.task.cancel(LegGone.__name__)  # leg A is gone: stop wherever the flow is

    def on_digit(self, digit: str) -> None:
        self.keypad.push(digit)

    async def _db(self, function, *args):
        return await asyncio.to_thread(function, *args)

    async def enter(self, state: State) -> None:
        log.info("callback %s: %s", self.due.session_id, state.value)
        self.state = state
        await self._db(self.store.set_state, self.due.session_id, state.value)

    def owns(self, leg: str) -> bool:
        return leg in self._events

    async def _originate(
        self, leg: str, number: str, caller_id: str, sdp: str, max_seconds: int, gateway: str | None = None
    ) -> None:
        self._events[leg] = asyncio.Queue()
        await self._db(self.store.leg_event, leg, LegStatus.DIALING, utcnow())
        command = {"type": "originate", "leg": leg, "target": number, "caller_id": caller_id, "sdp": sdp,
                   "max_seconds": max(max_seconds, 1)}  # fmt: skip
        if gateway:
            command["gateways"] = [gateway]
        self.links.kamailio.send(command)

    async def _outcome(self, leg: str, timeout: float) -> dict:
        """The leg's final word while it rings: answered, failed or cancelled (progress is recorded)."""
        queue = self._events[leg]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                event = await asyncio.wait_for(queue.get(), max(remaining, 0.01))
            except TimeoutError:
                self.links.kamailio.send({"type": "hangup", "leg": leg})
                try:
                    return await asyncio.wait_for(self._final(queue), 10)
                except TimeoutError:
                    return {"type": "leg_failed", "code": 408}
            if event["type"] == "leg_progress":
                await self._db(self.store.leg_event, leg, LegStatus.RINGING, utcnow(), event.get("code"))
            elif event["type"] in ("leg_answered", "leg_failed", "leg_cancelled"):
                return event

    @staticmethod
    async def _final(queue: asyncio.Queue) -> dict:
        while True:
            event = await queue.get()
            if event["type"] in ("leg_answered", "leg_failed", "leg_cancelled"):
                return event

    # --- prompts -----------------------------------------------------------------------------------

    async def say(self, prompt: Prompt, interruptible: bool = True, **values: str) -> None:
        """Play a sentence to A; a digit stops it (barge-in), and digits already typed skip it."""
        if interruptible and self.keypad.pending():
            return
        path = await self.links.speech.render(sentence(prompt, self.language, **values), self.language)
        duration_ms = await self.media.play(str(path))
        done = asyncio.Event()
        if interruptible:
            self.keypad.on_first_digit = done.set
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), duration_ms / 1000 + 0.2)
        self.keypad.on_first_digit = None
        if done.is_set():
            await self.media.stop()

    # --- the flow ------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.task = asyncio.current_task()
        outcome = State.ENDED, "completed"
        try:
            outcome = await self._flow()
        except asyncio.CancelledError as cancelled:
            reason = cancelled.args[0] if cancelled.args else ""
            if reason == OUT_OF_CREDIT:
                outcome = State.ENDED, "out of credit"
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await self._out_of_credit()
            else:
                outcome = (
                    State.ENDED,
                    {LegGone.__name__: "caller hung up", CANCELLED: CANCELLED}.get(reason, "controller stopped"),
                )
        except Exception:
            log.exception("callback %s failed", self.due.session_id)
            outcome = State.ENDED, "internal error"
        finally:
            await asyncio.shield(self._finish(*outcome))

    async def _flow(self) -> tuple[State, str]:
        raise NotImplementedError

    async def _call_a(self) -> bool:
        await self.enter(State.CALLING_A)
        caller_id = self.due.caller_id
        self.a_leg = await self._db(self.store.new_leg, self.due.session_id, LegRole.A, self.due.attempts,
                                    self.due.caller, caller_id)  # fmt: skip
        sdp = await self.media.sdp_for_a()
        await self._originate(self.a_leg, self.due.caller, caller_id, sdp, 7200, self.due.gateway)
        event = await self._outcome(self.a_leg, A_RING_SECONDS)
        if event["type"] != "leg_answered":
            code = event.get("code")
            await self._db(self.store.leg_event, self.a_leg, failure_status(code), utcnow(), code)
            self.a_leg = None  # over: nothing to hang up or bill
            return False
        self._a_answered = asyncio.get_running_loop().time()
        await self._db(self.store.leg_event, self.a_leg, LegStatus.ANSWERED, utcnow(), 200)
        await self.media.a_answered(event["sdp"])
        return True

    async def _bill_leg_a(self) -> bool:
        decision = await self.links.credit.reserve(self.a_leg)
        if not decision.allowed:
            await self.say(REFUSAL_PROMPTS.get(decision.reason, Prompt.CALL_FAILED), interruptible=False)
            return False
        self._track_credit(self.a_leg, decision.grant.granted_seconds, self._a_answered)
        self._credit_keeper = asyncio.ensure_future(self._keep_credit())
        return True

    async def _call_b(self, number: str) -> bool:
        """Place leg B to the number and bridge it; True once a call was connected."""
        now = utcnow()
        decision = await self._db(self.store.authorize, self.account.id, number, self.due.session_id, now)
        if not decision.allowed:
            await self.say(REFUSAL_PROMPTS.get(decision.reason, Prompt.CALL_FAILED))
            return False
        self.b_sequence += 1
        b_caller_id = self.due.caller if self.account.show_a_to_b else self.due.service_number
        leg = await self._db(self.store.new_leg, self.due.session_id, LegRole.B, self.b_sequence, number,
                             b_caller_id)  # fmt: skip
        reservation = await self.links.credit.reserve(leg)
        if not reservation.allowed:
            await self.say(REFUSAL_PROMPTS.get(reservation.reason, Prompt.CALL_FAILED))
            await self._db(self.store.leg_event, leg, LegStatus.FAILED, utcnow(), None, reservation.reason.value)
            return False
        if self.announce_max_duration:
            await self.say(Prompt.MAX_DURATION, duration=duration_words(reservation.max_seconds, self.language))
        await self.enter(State.CALLING_B)
        self.b_leg = leg
        await self._originate(leg, number, b_caller_id, self.media.sdp_for_b, reservation.max_seconds)
        await self.media.play(str(self.links.ringback))
        event = await self._outcome(leg, B_RING_SECONDS)
        await self.media.stop()
        if event["type"] != "leg_answered":
            code = event.get("code") or 500
            status = failure_status(code)
            await self._db(self.store.leg_event, leg, status, utcnow(), code)
            await self.links.credit.settle(leg)
            self.b_leg = None
            await self.say(FAILURE_PROMPTS.get(status, Prompt.CALL_FAILED))
            return False
        await self._db(self.store.leg_event, leg, LegStatus.ANSWERED, utcnow(), 200)
        await self.media.b_answered(event["sdp"])
        await self.enter(State.BRIDGED)
        await self._talk(leg, reservation.grant.granted_seconds)
        return True

    async def _talk(self, leg: str, granted: int) -> None:
        """While A and B talk (credit is kept by `_keep_credit`): until #11 or B's hang-up."""
        self._track_credit(leg, granted)
        self.keypad.clear()
        hash_11 = asyncio.ensure_future(self.keypad.wait_for_sequence("#11"))
        b_ended = asyncio.ensure_future(self._wait_ended(leg))
        try:
            done, _ = await asyncio.wait({hash_11, b_ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hash_11.cancel()
        if b_ended in done:
            by, cause = b_ended.result()
        else:
            by, cause = "party", "#11"
            await self._hang_up_b(leg, b_ended)
        await self._end_b(leg, by, cause)

    async def _hang_up_b(self, leg: str, b_ended: asyncio.Future | None = None) -> None:
        self.links.kamailio.send({"type": "hangup", "leg": leg})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(b_ended or self._wait_ended(leg), 10)
        if b_ended is not None:
            b_ended.cancel()

    async def _wait_ended(self, leg: str) -> tuple[str, str]:
        while True:
            event = await self._events[leg].get()
            if event["type"] == "leg_ended":
                return ("peer", "hung up") if event.get("by") == "peer" else ("platform", event.get("by", ""))

    # --- credit ----------------------------------------------------------------------------------

    def _track_credit(self, leg: str, granted: int, answered: float | None = None) -> None:
        """A leg is up: `_keep_credit` keeps its reservation ahead of its talk from now on."""
        self._granted[leg] = (answered if answered is not None else asyncio.get_running_loop().time(), granted)
        self._credit_changed.set()

    def _untrack_credit(self, leg: str) -> None:
        self._granted.pop(leg, None)
        self._credit_changed.set()

    async def _keep_credit(self) -> None:
        """From leg A's reservation to the end: extend the reservations of the legs that are up before
        their granted time runs out. When no more credit can be had, a bridged caller is warned a
        minute ahead, and at the end the session is cut (out of credit): no balance is overdrawn."""
        loop = asyncio.get_running_loop()

        def left() -> float:
            return min(answered + granted - loop.time() for answered, granted in self._granted.values())

        while True:
            early = left() - (EXTEND_BEFORE_SECONDS + WARN_BEFORE_SECONDS)
            if early > 0:
                self._credit_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._credit_changed.wait(), early)
                continue
            grants = await self._db(self.store.extend, list(self._granted), utcnow())
            if min(grant.added_seconds for grant in grants) == 0:
                break
            for grant in grants:
                if grant.leg_id in self._granted:
                    self._granted[grant.leg_id] = (self._granted[grant.leg_id][0], grant.granted_seconds)
        if self.b_leg is not None and left() > WARN_BEFORE_SECONDS:
            await asyncio.sleep(left() - WARN_BEFORE_SECONDS)
            path = await self.links.speech.render(sentence(Prompt.ONE_MINUTE_LEFT, self.language), self.language)
            await self.media.play_over_bridge(str(path))
        await asyncio.sleep(max(left(), 0))
        self.task.cancel(OUT_OF_CREDIT)

    async def _out_of_credit(self) -> None:
        if self.b_leg is not None:
            leg = self.b_leg
            await self._hang_up_b(leg)
            await self._end_b(leg, "platform", "out of credit")
        await self.say(Prompt.OUT_OF_CREDIT, interruptible=False)
        await self.say(Prompt.GOODBYE, interruptible=False)

    async def _end_b(self, leg: str, by: str, cause: str) -> None:
        self._untrack_credit(leg)
        await self._db(self.store.leg_event, leg, LegStatus.ENDED, utcnow())
        await self._db(self.store.leg_hung_up, leg, by, cause)
        await self.links.credit.settle(leg)
        self.b_leg = None
        await self.media.b_ended()

    # --- the end -----------------------------------------------------------------------------------

    async def _finish(self, state: State, reason: str) -> None:
        if self._credit_keeper is not None:
            self._credit_keeper.cancel()
        now = utcnow()
        for leg in self.legs():
            self.links.kamailio.send({"type": "hangup", "leg": leg})
            await self._db(self.store.leg_event, leg, LegStatus.ENDED, now)
            await self.links.credit.settle(leg)
        with contextlib.suppress(Exception):
            await self.media.delete()
        if state is State.FAILED and self.due.access and self.due.attempts <= self.due.access.retry_attempts:
            retry_at = now + timedelta(seconds=self.due.access.retry_interval_seconds)
            await self._db(self.store.retry_later, self.due.session_id, retry_at)
            log.info("callback %s: leg A not answered, retry at %s", self.due.session_id, retry_at)
            return
        await self._db(self.store.end, self.due.session_id, state.value, reason, now)
        log.info("callback %s: %s (%s)", self.due.session_id, state.value, reason)
