"""Credit operations of all running calls, gathered into shared transactions.

Every call reserves credit before each leg is placed and settles each leg when it ends. Done one
at a time, each costs a transaction of its own, and under load the database spends its time on
transaction overhead rather than on calls. The desk gathers the requests made while the previous
batch was in the database and runs them together (`CallbackStore.reserve_many` and
`settle_many`: the rating engine decides each leg exactly as if it were alone). With one call
there is nothing to wait for: a request runs at once. A request that fails in a batch fails only
itself: the store then runs the batch's requests one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

from boomerang.store.types import utcnow
from callback.store import CallbackStore
from rating.decisions import Decision

MOST_PER_BATCH = 100  # legs in one transaction: keeps its locks and its statements short


class Batcher:
    """Runs `run_batch` (blocking, on a thread of its own) on the keys submitted while it was busy.

    `run_batch(keys)` returns one result per key, an Exception for a key that failed.
    """

    def __init__(self, run_batch: Callable[[list[Hashable]], Sequence[object]], most: int = MOST_PER_BATCH) -> None:
        self._run_batch = run_batch
        self._most = most
        self._thread = ThreadPoolExecutor(max_workers=1)  # batches run one after another, in order
        self._waiting: list[tuple[Hashable, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None  # referenced, so that it is not collected mid-batch

    async def submit(self, key: Hashable) -> object:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        # A caller that is cancelled stops waiting; its request still runs (money is settled anyway).
        result = await asyncio.shield(future)
        if isinstance(result, Exception):
            raise result
        return result

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
            try:
                keys = [key for key, _ in batch]
                results = await asyncio.get_running_loop().run_in_executor(self._thread, self._run_batch, keys)
            except Exception as error:  # the store reports failures per key; this is a bug
                results = [error] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class CreditDesk:
    """Reserve and settle for the call flows, batched across calls."""

    def __init__(self, store: CallbackStore) -> None:
        self._reserve = Batcher(lambda legs: store.reserve_many(legs, utcnow()))
        self._settle = Batcher(lambda legs: store.settle_many(legs, utcnow()))

    async def reserve(self, leg_id: str, standby: bool = False) -> Decision:
        """Authorize the leg and reserve its first chunk of credit (rating.credit.reserve), with a
        standby for the call's destination when it is leg A of a callback that will ask for one."""
        return await self._reserve.submit((leg_id, standby))

    async def settle(self, leg_id: str) -> str | None:
        """Rate and charge the ended leg, or release an unanswered leg's reservation; idempotent.
        Returns why the leg could not be rated, if it could not (it is recorded at no cost)."""
        return await self._settle.submit(leg_id)
