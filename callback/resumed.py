"""A bridged call taken back by a controller that restarted: the call goes on, billed to its end.

    bridged --B or A hangs up, #11, credit ends--> ended

A controller that stops (killed, upgraded) leaves its calls with Kamailio, which keeps the legs and
their deadlines, and with rtpengine, which keeps the media. At its start the new controller asks
both whether a session the database records as bridged is still up (`Controller._take_back`); if it
is, this flow runs it from the bridge on: the credit keeper extends the legs' reservations and ends
the call inside its grant, A's digits are listened to, and each leg is billed to the BYE that ends
it, as if nothing had happened. What cannot be resumed (a session caught before the bridge, a leg
that ended meanwhile) is ended by the store's recovery and hung up.

Once leg B is gone the caller is not asked for another destination: the session ends with goodbye.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC

from boomerang.store.models import AccountStatus
from callback.flow import CallbackFlow, Leg, Links, State
from callback.prompts import Prompt, language_of
from callback.store import BridgedCall, UpLeg


class ResumedCall(CallbackFlow):
    def __init__(self, call: BridgedCall, links: Links) -> None:
        super().__init__(call.due, links)
        self.call = call

    async def _flow(self) -> tuple[State, str]:
        self.account = await self._db(self.store.account, self.due.account_id)
        if self.account is not None:
            self.language = language_of(self.account.language)
        self.a = self._taken_back(self.call.a)
        self.b = self._taken_back(self.call.b)
        self.state = State.BRIDGED
        self.media.held = True  # the service asked rtpengine before taking the call back
        if self.account is None or self.account.status is not AccountStatus.ACTIVE:
            return State.ENDED, "account unavailable"
        await self._talk(self.b)  # raises GrantEnded when Kamailio cut it at its deadline
        if self.a.up:
            await self.say(Prompt.GOODBYE, interruptible=False)
        return State.ENDED, "completed"

    def _taken_back(self, up: UpLeg) -> Leg:
        """The leg as the flow would know it had it placed it: placed, answered at its answer, its
        credit kept by the keeper from the grant it holds."""
        leg = self._leg(up.id, up.role, up.granted)
        leg.placed = True
        answered_at = up.answered_at if up.answered_at.tzinfo else up.answered_at.replace(tzinfo=UTC)
        at = answered_at.timestamp()
        leg.outcome.set_result({"type": "leg_answered", "leg": up.id, "ts": at, "dialog": up.dialog})
        leg.answered_clock = asyncio.get_running_loop().time() - max(time.time() - at, 0)
        if leg.granted is not None:
            self._keep_credit(leg)
        return leg
