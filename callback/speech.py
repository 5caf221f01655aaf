"""Prompts as sound: each sentence rendered once with espeak-ng, converted by sox to what rtpengine
plays (8 kHz, mono, 16-bit WAV), and kept in a cache directory named by the sentence's hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import wave
from pathlib import Path

# espeak-ng voices per catalogue language.
VOICES = {"en": "en-us", "es": "es"}
SPEED_WPM = 150


class SpeechError(RuntimeError):
    pass


class SpeechCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._rendering: dict[Path, asyncio.Future] = {}

    def path_for(self, text: str, language: str) -> Path:
        digest = hashlib.sha256(f"{language}\0{text}".encode()).hexdigest()[:24]
        return self.directory / language / f"{digest}.wav"

    async def render(self, text: str, language: str) -> Path:
        """The WAV for this sentence, rendering it unless it is already cached."""
        path = self.path_for(text, language)
        if path.exists():
            return path
        pending = self._rendering.get(path)
        if pending is None:  # concurrent requests for one sentence share one rendering
            pending = asyncio.ensure_future(self._render(text, language, path))
            self._rendering[path] = pending
            pending.add_done_callback(lambda _: self._rendering.pop(path, None))
        return await asyncio.shield(pending)

    async def _render(self, text: str, language: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = path.with_suffix(f".{os.getpid()}.raw.wav")
        final = path.with_suffix(f".{os.getpid()}.tmp.wav")
        voice = VOICES.get(language, VOICES["en"])
        await _run("espeak-ng", "-v", voice, "-s", str(SPEED_WPM), "-w", str(raw), text)
        await _run("sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(final))
        raw.unlink(missing_ok=True)
        final.replace(path)  # atomic: a reader never sees half a file
        return path


def wav_seconds(path: Path) -> float:
    """How long a rendered prompt plays."""
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        raise SpeechError(f"{argv[0]} failed ({process.returncode}): {errors.decode(errors='replace')[:200]}")


async def ringback_tone(directory: Path) -> Path:
    """The ringing tone A hears while leg B rings (North American ringback: 440+480 Hz, 2 s on,
    4 s off), a minute long; made once."""
    path = directory / "tones" / "ringback.wav"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.wav")
    await _run(
        "sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(partial),
        "synth", "2", "sine", "440", "sine", "480", "remix", "1", "gain", "-12", "pad", "0", "4", "repeat", "9",
    )  # fmt: skip
    partial.replace(path)
    return path
