"""Keypad input: type-ahead kept, terminators, pauses, barge-in, the #11 sequence."""

from __future__ import annotations

import asyncio

from callback.digits import DigitCollector, Entry


def run(coroutine):
    return asyncio.run(coroutine)


def test_digits_typed_ahead_of_the_question_are_kept():
    async def scenario():
        keypad = DigitCollector()
        for digit in "4321#00447700900123#":
            keypad.push(digit)
        return await keypad.collect(max_digits=12), await keypad.collect(max_digits=20)

    assert run(scenario()) == (Entry("4321", False), Entry("00447700900123", False))


def test_a_pause_ends_the_entry_with_what_was_typed():
    async def scenario():
        keypad = DigitCollector()

        async def typist():
            for digit in "43":
                await asyncio.sleep(0.01)
                keypad.push(digit)

        asyncio.get_running_loop().create_task(typist())
        return await keypad.collect(max_digits=12, first_timeout=1, next_timeout=0.2)

    assert run(scenario()) == Entry("43", True)


def test_nothing_typed_times_out_empty():
    assert run(DigitCollector().collect(max_digits=4, first_timeout=0.05)) == Entry("", True)


def test_max_digits_ends_the_entry_and_leaves_the_rest():
    async def scenario():
        keypad = DigitCollector()
        for digit in "123456":
            keypad.push(digit)
        return await keypad.collect(max_digits=4), keypad.pending()

    assert run(scenario()) == (Entry("1234", False), "56")


def test_the_first_digit_interrupts_the_prompt_once():
    async def scenario():
        keypad = DigitCollector()
        interrupted = []
        keypad.on_first_digit = lambda: interrupted.append(True)
        keypad.push("1")
        keypad.push("2")
        return interrupted

    assert run(scenario()) == [True]


def test_hash_one_one_is_recognised_among_other_digits():
    async def scenario():
        keypad = DigitCollector()
        waiting = asyncio.get_running_loop().create_task(keypad.wait_for_sequence("#11"))
        for digit in "5#1#11":
            keypad.push(digit)
            await asyncio.sleep(0)
        await asyncio.wait_for(waiting, 1)
        return waiting.done()

    assert run(scenario()) is True
