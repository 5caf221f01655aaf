"""The credit keeper of a call, without a platform: when it extends, what deadlines Kamailio is
given, when the caller is warned and when the call is ended. The keeper's leads are shortened to
fractions of a second so that each case runs in a second or two of real time."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from boomerang.store.types import utcnow
from callback import credit_keeper
from callback.credit_keeper import CreditKeeper
from rating.decisions import Grant


@pytest.fixture(autouse=True)
def short_leads(monkeypatch):
    monkeypatch.setattr(credit_keeper, "EXTEND_BEFORE_SECONDS", 0.5)
    monkeypatch.setattr(credit_keeper, "WARN_BEFORE_SECONDS", 1.0)
    monkeypatch.setattr(credit_keeper, "LEAST_WARNING_SECONDS", 0.3)
    monkeypatch.setattr(credit_keeper, "RETRY_SECONDS", 0.2)


class Call:
    """The keeper's surroundings, recording what it did and when (on the loop's clock)."""

    def __init__(self, extensions: list[int], bridged: bool = False, failures: int = 0) -> None:
        self.extensions = list(extensions)  # seconds each extension adds; then 0
        self.failures = failures  # extensions that raise first
        self.bridged = bridged
        self.extended: list[tuple[float, list[str]]] = []
        self.deadlines: list[tuple[float, str, int]] = []
        self.warned: list[float] = []
        self.ended: list[float] = []
        self.granted: dict[str, int] = {}
        self.loop = asyncio.get_running_loop()
        self.keeper = CreditKeeper(
            extend=self.extend,
            set_deadline=lambda leg, seconds: self.deadlines.append((self.loop.time(), leg, seconds)),
            warn=self.warn,
            end_call=lambda: self.ended.append(self.loop.time()),
            clock=self.loop.time,
            bridged=lambda: self.bridged,
            closing_seconds=0.4,
        )

    async def extend(self, legs):
        self.extended.append((self.loop.time(), list(legs)))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database gone")
        added = self.extensions.pop(0) if self.extensions else 0
        grants = []
        for leg in legs:
            self.granted[leg] += added
            grants.append(Grant(leg, self.granted[leg], added, Decimal(0), utcnow()))
        return grants

    async def warn(self):
        self.warned.append(self.loop.time())

    def up(self, leg: str, granted: int) -> None:
        self.granted[leg] = granted
        self.keeper.track(leg, self.loop.time(), granted)


def run(scenario):
    return asyncio.run(scenario())


def test_a_call_alone_is_extended_shortly_before_its_end_until_the_money_ends():
    async def scenario():
        call = Call(extensions=[1])
        start = call.loop.time()
        call.up("A", 1)
        await asyncio.wait_for(call.keeper.run(), 5)
        return call, start

    call, start = run(scenario)
    # Extended 0.5 s before the first end (at 0.5 s), then before the second (at 1.5 s): nothing.
    assert [round(at - start, 1) for at, _ in call.extended] == [0.5, 1.5]
    assert call.keeper.final and call.warned == []  # not bridged: no warning over a bridge
    # Ended inside the grant: its closing words (0.4 s) end with the 2 s granted.
    [ended] = call.ended
    assert 1.5 <= ended - start <= 1.7
    # Kamailio's deadline follows the grant: 1 s at the answer, then 1 s more from 0.5 s on.
    assert [(leg, seconds) for _, leg, seconds in call.deadlines] == [("A", 1), ("A", 1), ("A", 1)]


def test_a_leg_joining_brings_the_call_to_a_common_end_at_once_and_a_bridged_call_is_warned():
    async def scenario():
        call = Call(extensions=[], bridged=True)
        call.up("A", 30)  # leg A alone: nothing to do for a long while
        keeper = asyncio.ensure_future(call.keeper.run())
        await asyncio.sleep(0.2)
        assert call.extended == []
        start = call.loop.time()
        call.up("B", 2)  # leg B answered: the legs are brought to one end now
        await asyncio.wait_for(keeper, 5)
        return call, start

    call, start = run(scenario)
    [(at, legs)] = call.extended
    assert legs == ["A", "B"] and at - start < 0.1
    # Final at once (nothing added): warned a "minute" (1 s) before B's end, ended 0.4 s before it.
    [warned] = call.warned
    [ended] = call.ended
    assert 0.9 <= warned - start <= 1.1
    assert 1.5 <= ended - start <= 1.7


def test_a_database_that_does_not_answer_ends_the_call_on_the_credit_it_has(monkeypatch):
    monkeypatch.setattr(credit_keeper, "EXTEND_BEFORE_SECONDS", 1.0)

    async def scenario():
        call = Call(extensions=[60], failures=100)
        start = call.loop.time()
        call.up("A", 2)
        await asyncio.wait_for(call.keeper.run(), 5)
        return call, start

    call, start = run(scenario)
    assert len(call.extended) >= 2  # tried again
    [ended] = call.ended
    assert ended - start <= 2.0  # never past the grant
