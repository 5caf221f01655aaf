"""Connect two (a web callback, or an SMS "CB <A> <B>"): call A, then B, and bridge them; no IVR.

    calling_a --answered--> calling_b --answered--> bridged --B or A hangs up--> ended
        |                       |
        | busy, no answer       | busy, no answer, refused: A hears why
        v                       v
      failed                  ended

The session's account was known when the request was made, so nothing is asked: the first chunk of
both legs was reserved then, and the call is not placed if that credit went meanwhile. It pays for
each leg from that leg's answer, and the legs are cut when its credit runs out. A is shown B's
number, and B is shown A's.
"""

from __future__ import annotations

from boomerang.store.models import AccountStatus
from callback.flow import CallbackFlow, State
from callback.prompts import Prompt, language_of


class ConnectTwo(CallbackFlow):
    announce_max_duration = False

    async def _flow(self) -> tuple[State, str]:
        self.account = await self._db(self.store.account, self.due.account_id) if self.due.account_id else None
        if self.account is None or self.account.status is not AccountStatus.ACTIVE:
            return State.ENDED, "account unavailable"  # nothing dialled
        self.language = language_of(self.account.language)
        if not await self._call_a():
            if self.refusal is not None:
                return State.ENDED, f"refused: {self.refusal.value}"
            return State.FAILED, "leg A not answered"
        if not self.due.destination or not await self._call_b(self.due.destination):
            await self.say(Prompt.GOODBYE, interruptible=False)
            return State.ENDED, "leg B not connected"
        return State.ENDED, "completed"
