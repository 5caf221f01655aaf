"""A call's credit while its legs are up: the reservations kept ahead of the talk, Kamailio's hard
deadline for each leg kept at the call's end, and, once no more credit can be had, a warning a
minute ahead, "out of credit" inside the grant, and the end of the call at the grant's end.

The legs of a call end together (rating/credit.py `extend`): the call's end is the earliest of
its legs' answer + granted seconds, on the controller's clock. The keeper extends:
- while leg A is alone (the IVR), when less than EXTEND_BEFORE_SECONDS of its grant is left, so
  that a caller in the menus holds no more of the account's credit than it must;
- while bridged, WARN_BEFORE_SECONDS earlier, so that the last minute is known a minute ahead;
- at once when a leg joins (leg B answered), to bring the legs to a common end.
An extension that adds nothing makes the end final.

No I/O of its own: the flow gives it `extend` (the database), `set_deadline` (Kamailio), `warn`
and `end_call`, and a clock, so the decisions are tested without a platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from rating.decisions import Grant

log = logging.getLogger(__name__)

EXTEND_BEFORE_SECONDS = 20  # extend a reservation this long before the call's end
WARN_BEFORE_SECONDS = 60  # "you have one minute left"
LEAST_WARNING_SECONDS = 15  # a warning with less than this left is not worth it
RETRY_SECONDS = 2.0  # after an extension that failed (the database), try again this soon
CUT_EARLY_SECONDS = 0.25  # legs are hung up this much before the end: never a second past the grant


@dataclass
class _Up:
    answered: float  # on the keeper's clock
    granted: int


class CreditKeeper:
    def __init__(
        self,
        extend: Callable[[Sequence[str]], Awaitable[Sequence[Grant]]],
        set_deadline: Callable[[str, int], None],
        warn: Callable[[], Awaitable[None]],
        end_call: Callable[[], None],
        clock: Callable[[], float],
        bridged: Callable[[], bool],
        closing_seconds: float = 0.0,
    ) -> None:
        self._extend = extend
        self._set_deadline = set_deadline
        self._warn = warn
        self._end_call = end_call
        self._clock = clock
        self._bridged = bridged
        self.closing_seconds = closing_seconds  # what "out of credit" and "goodbye" take to say
        self._up: dict[str, _Up] = {}
        self._changed = asyncio.Event()
        self._joined = False  # a leg joined: bring the legs to a common end now
        self.final = False  # no more credit: the call ends at `end()`

    # --- what the flow tells it ----------------------------------------------------------------

    def track(self, leg: str, answered: float, granted: int) -> None:
        """A leg is up (answered at `answered`, on the clock) with `granted` seconds from then."""
        self._up[leg] = _Up(answered, granted)
        self._joined = len(self._up) > 1
        self._deadlines()
        self._changed.set()

    def untrack(self, leg: str) -> None:
        self._up.pop(leg, None)
        self._changed.set()

    def end(self) -> float | None:
        """When the call's credit ends, on the clock; None with no leg up."""
        if not self._up:
            return None
        return min(up.answered + up.granted for up in self._up.values())

    def left(self) -> float:
        end = self.end()
        return math.inf if end is None else end - self._clock()

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until the call's end is final, then its closing: warn, then tell the flow to end the call
        `closing_seconds` before the end, so that its last words fall inside the grant."""
        while not self.final:
            lead = EXTEND_BEFORE_SECONDS + (WARN_BEFORE_SECONDS if self._bridged() else 0)
            wait = 0.0 if self._joined else self.left() - lead
            if wait > 0:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), None if math.isinf(wait) else wait)
                continue
            self._joined = False
            legs = list(self._up)
            try:
                grants = await self._extend(legs)
            except Exception:
                log.exception("extending the reservations of legs %s failed", ", ".join(legs))
                await asyncio.sleep(min(RETRY_SECONDS, max(self.left() - self.closing_seconds, 0.01)))
                if self.left() <= self.closing_seconds + RETRY_SECONDS:
                    self.final = True  # the grant runs out before the database answers: end on it
                continue
            for grant in grants:
                if grant.leg_id in self._up:
                    self._up[grant.leg_id].granted = grant.granted_seconds
            self._deadlines()
            if not grants or min(grant.added_seconds for grant in grants) == 0:
                self.final = True
        if self._bridged() and self.left() - self.closing_seconds > LEAST_WARNING_SECONDS:
            await asyncio.sleep(max(self.left() - WARN_BEFORE_SECONDS, 0))
            with contextlib.suppress(Exception):
                await self._warn()
        await asyncio.sleep(max(self.left() - self.closing_seconds, 0))
        self._end_call()

    def _deadlines(self) -> None:
        """Kamailio cuts every leg at the call's end even if the controller is gone by then."""
        end = self.end()
        if end is None:
            return
        seconds = max(int(end - self._clock()), 1)
        for leg in self._up:
            self._set_deadline(leg, seconds)
