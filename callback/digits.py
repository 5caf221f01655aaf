"""Keypad input of one callback: digits typed ahead are kept, a digit interrupts a prompt.

Calling-card users type the PIN or the number before the prompt asking for it has finished, or even
started: the collector keeps every digit in order until a question consumes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """What a question got: the digits without the terminator, and whether it ended by timeout."""

    digits: str
    timed_out: bool


class DigitCollector:
    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._arrived = asyncio.Event()
        self.on_first_digit: Callable[[], None] | None = None  # barge-in: stops the prompt playing

    def push(self, digit: str) -> None:
        self._buffer.append(digit)
        self._arrived.set()
        if self.on_first_digit is not None:
            interrupt, self.on_first_digit = self.on_first_digit, None
            interrupt()

    def pending(self) -> str:
        return "".join(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()

    async def _next(self, timeout: float) -> str | None:
        if not self._buffer:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return None
        return self._buffer.pop(0)

    async def collect(
        self, *, max_digits: int, terminator: str = "#", first_timeout: float = 10.0, next_timeout: float = 5.0
    ) -> Entry:
        """Digits up to the terminator, max_digits, or a pause: the first may take first_timeout."""
        digits = ""
        timeout = first_timeout
        while len(digits) < max_digits:
            digit = await self._next(timeout)
            if digit is None:
                return Entry(digits, timed_out=True)
            if digit == terminator:
                return Entry(digits, timed_out=False)
            digits += digit
            timeout = next_timeout
        return Entry(digits, timed_out=False)

    async def wait_for_sequence(self, sequence: str) -> None:
        """Return once the digits typed end with `sequence` (e.g. "#11" during a call)."""
        typed = ""
        while not typed.endswith(sequence):
            digit = await self._next(3600)
            if digit is not None:
                typed = (typed + digit)[-len(sequence) :]
