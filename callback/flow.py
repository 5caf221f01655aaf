"""What every callback flow shares: its legs and their events, prompts to leg A, placing and
bridging leg B, keeping credit for the legs that are up, and the end (legs hung up, media deleted,
every leg settled). The flows themselves (`callback/regular.py`, `callback/connect_two.py`) are
explicit state machines built on it; each state is written to the session row as it is entered, so
the portal and a restarted controller see where a callback stands.

Money: no leg is placed before the credit for its first increment is reserved, except leg A of a
caller not yet identified (the platform carries it, for at most UNPAID_LEG_SECONDS, until the PIN
names the account that pays). A leg's times are the moments Kamailio saw its answer and its BYE
(the `ts` of its events), so it is billed for what was talked on the wire; while legs are up the
credit keeper (`callback/credit_keeper.py`) keeps their reservations ahead of the talk and ends the
call inside its grant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from boomerang.numbers import PrefixList
from boomerang.store.models import LegRole, LegStatus
from boomerang.store.types import utcnow
from callback.credit_desk import CreditDesk
from callback.credit_keeper import CUT_EARLY_SECONDS, CreditKeeper
from callback.digits import DigitCollector
from callback.media import MediaSession
from callback.prompts import Prompt, duration_words, language_of, sentence
from callback.speech import SpeechCache, wav_seconds
from callback.store import AccountView, CallbackStore, DueCallback
from rating.decisions import Decision, Reason

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
UNPAID_LEG_SECONDS = 120  # leg A of a caller not identified yet: Kamailio cuts it then at the latest
HANGUP_WAIT_SECONDS = 10  # for Kamailio to confirm a hang-up (the BYE's moment is the leg's end)
CLOSING_MARGIN_SECONDS = 1.0  # between the last words and the end of the grant
FINISH_RETRY_MOST_SECONDS = 10.0  # the longest pause between tries of an end step that failed
FINISH_PATIENCE_SECONDS = 600.0  # then the session is left for the next controller's recovery

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
FINAL_REPLIES = ("leg_answered", "leg_failed", "leg_cancelled")


def failure_status(code: int | None) -> LegStatus:
    return FAILURE_STATUSES.get(code, LegStatus.FAILED)


def event_time(event: dict | None) -> datetime:
    """When Kamailio saw what the event reports (its `ts`), else now."""
    stamp = (event or {}).get("ts")
    if isinstance(stamp, int | float):
        return datetime.fromtimestamp(stamp, UTC)
    return utcnow()


# Why a flow task is cancelled (the cancel message), and how its session then ends.
LEG_A_GONE = "caller hung up"  # leg A hung up: the session is over
OUT_OF_CREDIT = "out of credit"  # the credit ends: "out of credit" and goodbye, then hang up
GRANT_ENDED = "grant ended"  # Kamailio cut a leg at its hard deadline: nothing more can be said
CANCELLED = "cancelled"  # its requester asked to stop it
MEDIA_LOST = "media lost"  # rtpengine no longer holds the call (it restarted): nobody hears anything
END_REASONS = {LEG_A_GONE: "caller hung up", OUT_OF_CREDIT: "out of credit", GRANT_ENDED: "out of credit",
               MEDIA_LOST: "media lost",
               CANCELLED: "cancelled"}  # fmt: skip


class GrantEnded(Exception):
    """Kamailio cut leg B at the call's hard deadline: the call is over."""


class Leg:
    """One leg of the session, as the flow knows it: what Kamailio reported of it, once each."""

    def __init__(self, leg_id: str, role: LegRole, granted: int | None = None) -> None:
        self.id = leg_id
        self.role = role
        self.granted = granted  # seconds reserved from its answer; None: nobody pays for it yet
        self.placed = False  # an INVITE was sent
        loop = asyncio.get_running_loop()
        self.progress: asyncio.Queue = asyncio.Queue()  # 1xx while it rings
        self.outcome: asyncio.Future = loop.create_future()  # its final reply (or a late answer)
        self.ended: asyncio.Future = loop.create_future()  # its leg_ended event
        self.answered_clock = 0.0  # its answer on the event loop's clock
        self.recorded = False  # its final status is written
        self.settled = False

    def on_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "leg_progress":
            self.progress.put_nowait(event)
        elif kind in FINAL_REPLIES or kind == "leg_late_answer":
            if not self.outcome.done():
                self.outcome.set_result(event)
        elif kind == "leg_ended":
            for future in (self.outcome, self.ended):
                if not future.done():
                    future.set_result(event)

    @property
    def answered(self) -> bool:
        return self.outcome.done() and self.outcome.result().get("type") == "leg_answered"

    @property
    def up(self) -> bool:
        return self.answered and not self.ended.done()


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
        self.a: Leg | None = None
        self.b: Leg | None = None
        self.b_sequence = 0
        self._legs: dict[str, Leg] = {}
        self._ahead_b: Leg | None = None  # leg B reserved with the request, for its destination
        self.state: State | None = None
        self.task: asyncio.Task | None = None
        self.cancelling = False  # its requester asked to stop it; the flow task was cancelled
        self.finishing = False  # in `_finish`: nothing cancels it any more
        loop = asyncio.get_running_loop()
        self.keeper = CreditKeeper(
            extend=lambda legs: self._db(self.store.extend, list(legs), utcnow()),
            set_deadline=self._set_deadline,
            warn=self._warn,
            end_call=lambda: self.task.cancel(OUT_OF_CREDIT) if self.task and not self.finishing else None,
            clock=loop.time,
            bridged=lambda: self.b is not None and self.b.up,
        )
        self._keeper_task: asyncio.Task | None = None
        self.refusal: Reason | None = None  # why credit control refused leg A, when it did

    # --- plumbing ---------------------------------------------------------------------------------

    def owns(self, leg_id: str) -> bool:
        return leg_id in self._legs

    def up_legs(self) -> list[str]:
        return [leg.id for leg in self._legs.values() if leg.up]

    def ringing_legs(self) -> list[str]:
        """Legs placed that have no final word yet."""
        return [leg.id for leg in self._legs.values() if leg.placed and not leg.outcome.done()]

    def on_leg_event(self, event: dict) -> None:
        leg = self._legs.get(event.get("leg"))
        if leg is None:
            return
        leg.on_event(event)
        if leg is self.a and event.get("type") == "leg_ended" and self.state not in (State.CALLING_A, None):
            if self.task is not None and not self.finishing:  # leg A is gone: stop wherever the flow is
                self.task.cancel(GRANT_ENDED if event.get("by") == "max_duration" else LEG_A_GONE)

    def on_digit(self, digit: str) -> None:
        self.keypad.push(digit)

    async def _db(self, function, *args):
        return await asyncio.to_thread(function, *args)

    async def enter(self, state: State) -> None:
        log.info("callback %s: %s", self.due.session_id, state.value)
        self.state = state
        await self._db(self.store.set_state, self.due.session_id, state.value, utcnow())

    def _leg(self, leg_id: str, role: LegRole, granted: int | None = None) -> Leg:
        leg = self._legs[leg_id] = Leg(leg_id, role, granted)
        return leg

    async def _originate(self, leg: Leg, number: str, caller_id: str, sdp: str, gateway: str | None = None) -> None:
        await self._db(self.store.leg_event, leg.id, LegStatus.DIALING, utcnow())
        max_seconds = leg.granted if leg.granted is not None else UNPAID_LEG_SECONDS
        command = {"type": "originate", "leg": leg.id, "target": number, "caller_id": caller_id, "sdp": sdp,
                   "max_seconds": max(max_seconds, 1)}  # fmt: skip
        if gateway:
            command["gateways"] = [gateway]
        self.links.kamailio.send(command)  # raises while Kamailio is away: the leg was never placed
        leg.placed = True

    async def _outcome(self, leg: Leg, timeout: float) -> dict:
        """The leg's final word while it rings: answered, failed or cancelled (progress is recorded).
        At the timeout it is cancelled; an answer crossing our CANCEL is hung up by Kamailio."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not leg.outcome.done() and (remaining := deadline - loop.time()) > 0:
            progress = asyncio.ensure_future(leg.progress.get())
            try:
                await asyncio.wait({progress, leg.outcome}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                progress.cancel()
            if progress.done() and not progress.cancelled():
                await self._rung(leg, progress.result())
        while not leg.progress.empty():  # rung, and answered (or failed) in the same breath: both recorded
            await self._rung(leg, leg.progress.get_nowait())
        if not leg.outcome.done():
            self._tell({"type": "hangup", "leg": leg.id})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(leg.outcome), HANGUP_WAIT_SECONDS)
            if not leg.outcome.done():
                return {"type": "leg_failed", "code": 408}
        event = leg.outcome.result()
        if event.get("type") == "leg_late_answer":
            return {"type": "leg_cancelled", "code": 487}
        return event

    async def _rung(self, leg: Leg, event: dict) -> None:
        await self._db(self.store.leg_event, leg.id, LegStatus.RINGING, event_time(event), event.get("code"))

    async def _answered(self, leg: Leg, event: dict) -> None:
        """Record the answer at the moment Kamailio saw it; a paid leg's credit is kept from then."""
        at = event_time(event)
        leg.answered_clock = asyncio.get_running_loop().time() - max(time.time() - at.timestamp(), 0)
        await self._db(self.store.leg_event, leg.id, LegStatus.ANSWERED, at, 200, "", event.get("dialog"))
        if leg.granted is not None:
            self._keep_credit(leg)

    async def _not_answered(self, leg: Leg, event: dict) -> LegStatus:
        code = event.get("code") or 500
        status = failure_status(code)
        await self._db(self.store.leg_event, leg.id, status, event_time(event), code)
        leg.recorded = True
        await self._settle(leg)  # its reservation, if any, is released
        return status

    async def _hang_up(self, leg: Leg) -> dict | None:
        """Hang the leg up; its leg_ended event (when the BYE left), or None if none came."""
        self._tell({"type": "hangup", "leg": leg.id})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(leg.ended), HANGUP_WAIT_SECONDS)
        return leg.ended.result() if leg.ended.done() else None

    def _tell(self, command: dict) -> None:
        """A command Kamailio may miss while it restarts: the legs it holds keep their deadlines, and
        the legs up are taught again when it is back (`Controller._reteach_kamailio`)."""
        try:
            self.links.kamailio.send(command)
        except ConnectionError as error:
            log.warning("callback %s: %s not sent to Kamailio: %r", self.due.session_id, command["type"], error)

    def dialogs(self) -> list[tuple[str, dict, int]]:
        """(leg, dialog, seconds left) of each leg up whose dialog Kamailio reported at its answer."""
        now = asyncio.get_running_loop().time()
        taught = []
        for leg in self._legs.values():
            dialog = leg.outcome.result().get("dialog") if leg.up else None
            if not dialog:
                continue
            left = self.keeper.left() if leg.granted is not None else leg.answered_clock + UNPAID_LEG_SECONDS - now
            taught.append((leg.id, dialog, max(int(left) if math.isfinite(left) else UNPAID_LEG_SECONDS, 1)))
        return taught

    def _set_deadline(self, leg_id: str, seconds: int) -> None:
        self._tell({"type": "set_max_duration", "leg": leg_id, "seconds": seconds})

    # --- prompts -----------------------------------------------------------------------------------

    async def say(self, prompt: Prompt, interruptible: bool = True, over_bridge: bool = False, **values: str) -> None:
        """Play a sentence to A; a digit stops it (barge-in), and digits already typed skip it.
        `over_bridge`: A is talking to B, who is not heard meanwhile."""
        if interruptible and self.keypad.pending():
            return
        path = await self.links.speech.render(sentence(prompt, self.language, **values), self.language)
        duration_ms = await (self.media.play_over_bridge if over_bridge else self.media.play)(str(path))
        done = asyncio.Event()
        if interruptible:
            self.keypad.on_first_digit = done.set
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), duration_ms / 1000 + 0.2)
        self.keypad.on_first_digit = None
        if done.is_set():
            await self.media.stop()

    async def _closing_seconds(self) -> float:
        """How long "out of credit" and "goodbye" take to say, in the caller's language."""
        total = CLOSING_MARGIN_SECONDS
        for prompt in (Prompt.OUT_OF_CREDIT, Prompt.GOODBYE):
            path = await self.links.speech.render(sentence(prompt, self.language), self.language)
            total += wav_seconds(path)
        return total

    # --- the flow ------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.task = asyncio.current_task()
        outcome = State.ENDED, "completed"
        try:
            outcome = await self._flow()
        except asyncio.CancelledError as cancelled:
            reason = cancelled.args[0] if cancelled.args else ""
            outcome = State.ENDED, END_REASONS.get(reason, "controller stopped")
            if reason == OUT_OF_CREDIT:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await self._out_of_credit()
        except GrantEnded:
            outcome = State.ENDED, "out of credit"
        except Exception:
            log.exception("callback %s failed", self.due.session_id)
            outcome = State.ENDED, "internal error"
        finally:
            # The end runs to its end: the task (and so the session's routing of events, which the
            # end waits for) lasts until every leg is closed, whatever cancels it meanwhile.
            self.finishing = True
            finish = asyncio.ensure_future(self._finish(*outcome))
            while not finish.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(finish)

    async def _flow(self) -> tuple[State, str]:
        raise NotImplementedError

    async def _call_a(self) -> bool:
        """Leg A placed, with its credit reserved when the account is known; True once answered."""
        await self.enter(State.CALLING_A)
        if not await self._reserve_ahead():
            return False
        caller_id = self.due.caller_id
        if self.account is None and (self.due.reserved or self._paid_by_caller_id()):
            self.account = await self._db(self.store.account, self.due.account_id)
        if self.a is None:
            leg_id = await self._db(self.store.new_leg, self.due.session_id, LegRole.A, self.due.attempts,
                                    self.due.caller, caller_id)  # fmt: skip
            self.a = self._leg(leg_id, LegRole.A)
            if self._paid_by_caller_id() and not await self._reserve_a():
                return False
        else:
            await self._db(self.store.set_caller_id, self.a.id, caller_id)
        sdp = await self.media.sdp_for_a()
        await self._originate(self.a, self.due.caller, caller_id, sdp, self.due.gateway)
        event = await self._outcome(self.a, A_RING_SECONDS)
        if event["type"] != "leg_answered":
            await self._not_answered(self.a, event)
            return False
        await self._answered(self.a, event)
        await self.media.a_answered(event["sdp"])
        return True

    def _paid_by_caller_id(self) -> bool:
        """The request came from a caller ID of an account that this access number lets in by it."""
        return self.due.account_id is not None and (self.due.access is None or self.due.access.allow_ani)

    async def _reserve_ahead(self) -> bool:
        """Legs reserved when the callback was asked for keep their credit now it is placed; False
        (the call is not placed) when it went to other calls meanwhile."""
        if not self.due.reserved:
            return True
        grants = await self._db(self.store.renew, list(self.due.reserved.values()), utcnow())
        for role, leg_id in self.due.reserved.items():  # known to the flow either way, to be closed
            leg = self._leg(leg_id, role, grants[leg_id] if grants else None)
            if role is LegRole.A:
                self.a = leg
            else:
                self._ahead_b = leg
        if grants is None:
            self.refusal = Reason.INSUFFICIENT_CREDIT
            return False
        return True

    async def _reserve_a(self, prompt_refusal: bool = False) -> bool:
        """Reserve leg A, with a standby for its destination unless the request named it."""
        decision = await self.links.credit.reserve(self.a.id, standby=self.due.destination is None)
        if not decision.allowed:
            self.refusal = decision.reason
            log.info("callback %s: leg A refused by credit control (%s)", self.due.session_id, decision.reason)
            if prompt_refusal:
                await self.say(REFUSAL_PROMPTS.get(decision.reason, Prompt.CALL_FAILED), interruptible=False)
            return False
        self.a.granted = decision.grant.granted_seconds
        if self.a.answered:
            self._keep_credit(self.a)
        return True

    async def _call_b(self, number: str) -> bool:
        """Place leg B to the number and bridge it; True once a call was connected."""
        leg, self._ahead_b = self._ahead_b, None
        b_caller_id = self.due.caller if self.account.show_a_to_b else self.due.service_number
        if leg is None:
            self.b_sequence += 1
            leg_id = await self._db(self.store.new_leg, self.due.session_id, LegRole.B, self.b_sequence, number,
                                    b_caller_id)  # fmt: skip
            leg = self._leg(leg_id, LegRole.B)
            reservation: Decision = await self.links.credit.reserve(leg.id)
            if not reservation.allowed:
                await self.say(REFUSAL_PROMPTS.get(reservation.reason, Prompt.CALL_FAILED))
                await self._db(self.store.leg_event, leg.id, LegStatus.FAILED, utcnow(), None,
                               reservation.reason.value)  # fmt: skip
                leg.recorded = leg.settled = True  # nothing was placed, nothing is held
                return False
            leg.granted = reservation.grant.granted_seconds
            if self.announce_max_duration:
                await self.say(Prompt.MAX_DURATION, duration=duration_words(reservation.max_seconds, self.language))
        else:
            await self._db(self.store.set_caller_id, leg.id, b_caller_id)
        await self.enter(State.CALLING_B)
        self.b = leg
        await self._originate(leg, number, b_caller_id, self.media.sdp_for_b)
        await self.media.play(str(self.links.ringback))
        event = await self._outcome(leg, B_RING_SECONDS)
        await self.media.stop()
        if event["type"] != "leg_answered":
            status = await self._not_answered(leg, event)
            self.b = None
            await self.say(FAILURE_PROMPTS.get(status, Prompt.CALL_FAILED))
            return False
        await self._answered(leg, event)
        await self.media.b_answered(event["sdp"])
        await self.enter(State.BRIDGED)
        await self._talk(leg)
        return True

    async def _talk(self, leg: Leg) -> None:
        """While A and B talk (credit is kept by the keeper): until #11 or B's hang-up."""
        self.keypad.clear()
        hash_11 = asyncio.ensure_future(self.keypad.wait_for_sequence("#11"))
        try:
            await asyncio.wait({hash_11, leg.ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hash_11.cancel()
        if not leg.ended.done():  # #11: the caller wants another destination
            await self._end_b(leg, await self._hang_up(leg), "party", "#11")
            return
        ended = leg.ended.result()
        by = ended.get("by", "")
        if by == "peer":
            await self._end_b(leg, ended, "peer", "hung up")
            return
        await self._end_b(leg, ended, "platform", self._platform_cause(by, by))
        if by == "max_duration":
            raise GrantEnded

    async def _end_b(self, leg: Leg, ended: dict | None, by: str, cause: str) -> None:
        self.keeper.untrack(leg.id)
        await self._db(self.store.leg_event, leg.id, LegStatus.ENDED, event_time(ended))
        await self._db(self.store.leg_hung_up, leg.id, by, cause)
        leg.recorded = True
        await self._settle(leg)
        self.b = None
        await self.media.b_ended()

    # --- credit ----------------------------------------------------------------------------------

    def _keep_credit(self, leg: Leg) -> None:
        """A paid leg is up: the keeper keeps its credit from now on."""
        self.keeper.track(leg.id, leg.answered_clock, leg.granted)
        if self._keeper_task is None:
            self._keeper_task = asyncio.ensure_future(self._run_keeper())

    async def _run_keeper(self) -> None:
        self.keeper.closing_seconds = await self._closing_seconds()
        await self.keeper.run()

    async def _warn(self) -> None:
        path = await self.links.speech.render(sentence(Prompt.ONE_MINUTE_LEFT, self.language), self.language)
        await self.media.play_over_bridge(str(path))

    async def _out_of_credit(self) -> None:
        """The credit ends: say so inside the grant, then let the grant run out (the end hangs up)."""
        loop = asyncio.get_running_loop()
        end = self.keeper.end() or loop.time()
        cut = end - CUT_EARLY_SECONDS

        async def closing() -> None:
            bridged = self.b is not None and self.b.up
            try:
                await self.say(Prompt.OUT_OF_CREDIT, interruptible=False, over_bridge=bridged)
                await self.say(Prompt.GOODBYE, interruptible=False, over_bridge=bridged)
            except Exception as error:  # the words are lost (the media, say), not the talk time paid for
                log.warning("callback %s: the out-of-credit words failed: %r", self.due.session_id, error)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing(), max(cut - loop.time(), 0))
        await asyncio.sleep(max(cut - loop.time(), 0))

    async def _settle(self, leg: Leg) -> None:
        if leg.settled:
            return
        unrated = await self.links.credit.settle(leg.id)
        leg.settled = True
        if unrated is not None:
            log.warning("callback %s: leg %s could not be rated (%s): recorded at no cost",
                        self.due.session_id, leg.id, unrated)  # fmt: skip
            self._tell({"type": "alert", "alert": "unrated_leg"})

    # --- the end -----------------------------------------------------------------------------------

    def _platform_cause(self, by: str | None, reason: str) -> str:
        """Why we cut a leg. Kamailio's hard deadline sits on the end of the credit (rounded down to
        its whole seconds), so it may cut a leg a moment before the flow's own goodbye does: once the
        credit is final, that cut is the credit running out, and is recorded as such."""
        if by != "max_duration":
            return reason
        return END_REASONS[OUT_OF_CREDIT] if self.keeper.final else by

    async def _finish(self, state: State, reason: str) -> None:
        """Every leg hung up, recorded at the moment it ended and settled, each on its own and each
        tried again until it is (a failure is logged and keeps no other leg from closing); media
        deleted; the session ended once every leg is closed."""
        if self._keeper_task is not None:
            self._keeper_task.cancel()
        legs = list(self._legs.values())
        for leg in legs:
            if leg.placed and not leg.recorded:
                self._tell({"type": "hangup", "leg": leg.id})
        waiting = [leg.ended if leg.answered else leg.outcome for leg in legs if leg.placed and not leg.recorded]
        if waiting:
            await asyncio.wait([asyncio.shield(future) for future in waiting], timeout=HANGUP_WAIT_SECONDS)
        closed = [await self._until_done(lambda leg=leg: self._close_leg(leg, reason), f"leg {leg.id}") for leg in legs]
        try:
            await self.media.delete()
        except Exception as error:  # its ports stay taken until rtpengine's own timeout: say so
            log.warning("callback %s: its media could not be deleted: %r", self.due.session_id, error)
        if not all(closed):  # left as it is: the next start of a controller closes it
            log.error("callback %s: not every leg could be closed; left for recovery", self.due.session_id)
            self._tell({"type": "alert", "alert": "session_not_closed"})
            return
        now = utcnow()
        if state is State.FAILED and self.due.access and self.due.attempts <= self.due.access.retry_attempts:
            retry_at = now + timedelta(seconds=self.due.access.retry_interval_seconds)
            if await self._until_done(lambda: self._db(self.store.retry_later, self.due.session_id, retry_at), "retry"):
                log.info("callback %s: leg A not answered, retry at %s", self.due.session_id, retry_at)
            return
        if await self._until_done(
            lambda: self._db(self.store.end, self.due.session_id, state.value, reason, now), "end"
        ):
            log.info("callback %s: %s (%s)", self.due.session_id, state.value, reason)

    async def _until_done(self, step, what: str) -> bool:
        """Run an end step until it succeeds (the database may be stalled or restarting), with a
        pause doubling to FINISH_RETRY_MOST_SECONDS; False after FINISH_PATIENCE_SECONDS."""
        loop = asyncio.get_running_loop()
        give_up, pause = loop.time() + FINISH_PATIENCE_SECONDS, 0.5
        while True:
            try:
                await step()
                return True
            except Exception:
                log.exception("callback %s: %s could not be closed; trying again", self.due.session_id, what)
            if loop.time() + pause > give_up:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, FINISH_RETRY_MOST_SECONDS)

    async def _close_leg(self, leg: Leg, reason: str) -> None:
        if not leg.recorded:
            if not leg.placed:
                await self._db(self.store.leg_event, leg.id, LegStatus.CANCELLED, utcnow(), None, "not placed")
            elif leg.answered:
                ended = leg.ended.result() if leg.ended.done() else None
                await self._db(self.store.leg_event, leg.id, LegStatus.ENDED, event_time(ended))
                by = (ended or {}).get("by")
                if by == "peer":
                    await self._db(self.store.leg_hung_up, leg.id, "peer", "hung up")
                else:  # we hung it up as the session ended, or Kamailio did at its hard deadline
                    await self._db(self.store.leg_hung_up, leg.id, "platform", self._platform_cause(by, reason))
            else:
                outcome = leg.outcome.result() if leg.outcome.done() else None
                code = (outcome or {}).get("code")
                status = LegStatus.CANCELLED if code in (None, 487) else failure_status(code)
                await self._db(self.store.leg_event, leg.id, status, event_time(outcome), code)
            leg.recorded = True
        await self._settle(leg)
