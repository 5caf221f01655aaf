"""What the IVR says, and the sound files it plays."""

from __future__ import annotations

import asyncio
import wave
from decimal import Decimal

import pytest

from callback.prompts import CATALOGUE, Prompt, amount_words, duration_words, language_of, sentence
from callback.speech import SpeechCache


@pytest.mark.parametrize(
    ("amount", "currency", "words"),
    [
        (Decimal("10.00"), "USD", "10 dollars"),
        (Decimal("10.50"), "USD", "10 dollars and 50 cents"),
        (Decimal("1.01"), "GBP", "1 pound and 1 penny"),
        (Decimal("0.35"), "EUR", "35 cents"),
        (Decimal("0.009"), "USD", "0 dollars"),
        (Decimal("2.999999"), "USD", "2 dollars and 99 cents"),  # never more than the account has
        (Decimal("-3.20"), "USD", "minus 3 dollars and 20 cents"),
        (Decimal("5"), "XYZ", "5 XYZ"),
    ],
)
def test_amounts_in_words(amount, currency, words):
    assert amount_words(amount, currency) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "less than a minute"), (59, "less than a minute"), (60, "1 minute"), (2100, "35 minutes"),
     (2159, "35 minutes"), (3600, "1 hour"), (3900, "1 hour and 5 minutes"), (7260, "2 hours and 1 minute")],
)  # fmt: skip
def test_durations_in_words_never_promise_more_than_allowed(seconds, words):
    assert duration_words(seconds) == words


def test_every_language_has_every_prompt():
    for language, prompts in CATALOGUE.items():
        assert set(prompts) == set(Prompt), language


def test_language_falls_back_to_english():
    assert language_of("es-MX") == "es"
    assert language_of("tlh") == "en"
    assert sentence(Prompt.MAX_DURATION, "es", duration=duration_words(120, "es")) == "Puede hablar durante 2 minutos."


def test_a_prompt_is_rendered_once_as_8khz_mono_wav(tmp_path):
    cache = SpeechCache(tmp_path)
    text = sentence(Prompt.BALANCE, "en", amount=amount_words(Decimal("10.50"), "USD"))

    async def render_twice():
        return await asyncio.gather(cache.render(text, "en"), cache.render(text, "en"))

    first, second = asyncio.run(render_twice())
    assert first == second
    with wave.open(str(first)) as sound:
        assert (sound.getframerate(), sound.getnchannels(), sound.getsampwidth()) == (8000, 1, 2)
        assert 1.0 < sound.getnframes() / 8000 < 6.0  # a short sentence, spoken
    mtime = first.stat().st_mtime_ns
    assert asyncio.run(cache.render(text, "en")).stat().st_mtime_ns == mtime  # cached, not redone
    assert list(tmp_path.rglob("*.raw.wav")) == [] and list(tmp_path.rglob("*.tmp.wav")) == []
