"""The regular callback (PIN or ANI), as an explicit state machine.

    calling_a --answer--> authorizing --ok--> asking_destination --valid, rated--> calling_b
        |                     |                    ^      |                          |
        | busy, no answer     | 3 wrong PINs       |      | invalid / unrated:       | answered
        v                     v                    |      | prompt, ask again        v
     failed (or retried)    ended                  '------+<----- B ends, #11 ---- bridged

Leg A hanging up ends everything from any state (the flow task is cancelled and `_finish` cleans
up: legs hung up, media deleted, every leg settled). What flows share is in `callback/flow.py`.

Credit: a caller whose caller ID names the account has leg A reserved before it is dialled, with a
standby for the destination's first increment; a caller identified by PIN has it reserved when the
PIN names the account (refused: it is told why and hung up, and nobody is billed for the leg).
"""

from __future__ import annotations

import logging

from boomerang.numbers import InvalidNumber, dialled_to_e164
from boomerang.store.models import AccountStatus
from boomerang.store.types import utcnow
from callback.flow import (
    DESTINATION_ATTEMPTS,
    DESTINATION_MAX_DIGITS,
    PIN_ATTEMPTS,
    PIN_MAX_DIGITS,
    CallbackFlow,
    State,
)
from callback.prompts import Prompt, amount_words, language_of
from callback.store import AccountView

log = logging.getLogger(__name__)


class RegularCallback(CallbackFlow):
    async def _flow(self) -> tuple[State, str]:
        if not await self._call_a():
            if self.refusal is not None:
                return State.ENDED, f"refused: {self.refusal.value}"
            return State.FAILED, "leg A not answered"
        await self.enter(State.AUTHORIZING)
        refused = await self._authorize()
        if refused is not None:
            await self.say(Prompt.GOODBYE, interruptible=False)
            return State.ENDED, refused
        if self.due.access is None or self.due.access.announce_balance:
            free = await self._db(self.store.free_credit, self.account.id, utcnow())
            await self.say(Prompt.BALANCE, amount=amount_words(free, self.account.currency, self.language))
        failures = 0
        named = self.due.destination  # the request named the first destination: no need to ask
        while failures < DESTINATION_ATTEMPTS:
            await self.enter(State.ASKING_DESTINATION)
            if named is not None:
                number, named = named, None
            else:
                number = await self._ask_destination()
            if number is None:
                failures += 1
                continue
            if await self._call_b(number):
                failures = 0
        await self.say(Prompt.GOODBYE, interruptible=False)
        return State.ENDED, "no destination"

    async def _authorize(self) -> str | None:
        """Who pays, and leg A's credit reserved for them; why not, when nobody does."""
        if self.a.granted is not None:  # paid from the start: the caller ID named the account
            self.language = language_of(self.account.language)
            return None
        access = self.due.access
        if access is None or access.allow_ani:
            self.account = await self._db(self.store.account_by_caller, self.due.caller)
        if self.account is None and (access is None or access.allow_pin):
            self.account = await self._ask_pin()
            if self.account is not None and (access is None or access.save_caller_id_on_pin):
                await self._db(self.store.save_caller_id, self.account.id, self.due.caller)
        if self.account is None:
            return "not authorized"
        if self.account.status is not AccountStatus.ACTIVE:
            await self.say(Prompt.ACCOUNT_UNAVAILABLE, interruptible=False)
            return "not authorized"
        self.language = language_of(self.account.language)
        await self._db(self.store.attach_account, self.due.session_id, self.account.id)
        if not await self._reserve_a(prompt_refusal=True):
            # Nobody pays for what leg A talked so far: the platform carried it, the account is not
            # billed for a call it could not afford.
            await self._db(self.store.attach_account, self.due.session_id, None)
            return "leg A refused by credit control"
        return None

    async def _ask_pin(self) -> AccountView | None:
        for _ in range(PIN_ATTEMPTS):
            await self.say(Prompt.ENTER_PIN)
            entry = await self.keypad.collect(max_digits=PIN_MAX_DIGITS)
            account = await self._db(self.store.account_by_pin, entry.digits) if entry.digits else None
            if account is not None:
                return account
            self.keypad.clear()  # whatever followed a wrong PIN is not a PIN
            await self.say(Prompt.WRONG_PIN, interruptible=False)
        return None

    async def _ask_destination(self) -> str | None:
        await self.say(Prompt.ENTER_DESTINATION)
        entry = await self.keypad.collect(max_digits=DESTINATION_MAX_DIGITS, first_timeout=15)
        if not entry.digits:
            return None
        try:
            number = dialled_to_e164(entry.digits, self.account.country_code)
        except InvalidNumber:
            await self.say(Prompt.INVALID_NUMBER)
            return None
        if self.links.blocked.covers(number):
            log.info("callback %s: blocked destination %s refused", self.due.session_id, number)
            await self.say(Prompt.BLOCKED)
            return None
        return number
