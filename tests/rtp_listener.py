"""Hear what a phone would: receive a call's RTP on a UDP port and compare it with a prompt's WAV."""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
import wave
from pathlib import Path


def _alaw_sample(byte: int) -> int:
    """G.711 A-law to 16-bit linear."""
    byte ^= 0x55
    magnitude = (byte & 0x0F) << 4
    segment = (byte & 0x70) >> 4
    if segment == 0:
        magnitude += 8
    elif segment == 1:
        magnitude += 0x108
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if byte & 0x80 else -magnitude


ALAW = [_alaw_sample(byte) for byte in range(256)]
PCMA = 8


class RtpListener:
    """A UDP socket on 127.0.0.1 collecting PCMA RTP in a thread until `stop()`."""

    def __init__(self, port: int) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", port))
        self.socket.settimeout(0.2)
        self.packets: list[tuple[float, int, bytes]] = []  # arrival, sequence number, payload
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self.socket.recv(2048)
            except TimeoutError:
                continue
            if len(data) > 12 and data[1] & 0x7F == PCMA:
                self.packets.append((time.monotonic(), struct.unpack_from("!H", data, 2)[0], data[12:]))

    def stop(self) -> None:
        self._running = False
        self._thread.join(2)
        self.socket.close()

    def samples(self) -> list[int]:
        """The audio heard, in sequence order, as 16-bit linear samples."""
        ordered = sorted(self.packets, key=lambda packet: packet[1])
        return [ALAW[byte] for _, _, payload in ordered for byte in payload]


def wav_samples(path: Path) -> list[int]:
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        frames = wav.readframes(wav.getnframes())
    return list(struct.unpack(f"<{len(frames) // 2}h", frames))


def voiced_seconds(samples: list[int], threshold: float = 500) -> float:
    """How long the audio is louder than quiet line noise, in 20 ms frames."""
    frames = [samples[start : start + 160] for start in range(0, len(samples) - 159, 160)]
    loud = sum(1 for frame in frames if math.sqrt(sum(s * s for s in frame) / 160) > threshold)
    return loud * 0.02


def similarity(heard: list[int], reference: list[int], seconds: float = 1.5, max_lag: int = 240) -> float:
    """The best normalised correlation between the start of what was heard and the start of
    `reference`, over lags up to `max_lag` samples: near 1 when it is that recording."""
    length = int(seconds * 8000)
    target = reference[:length]
    target_energy = math.sqrt(sum(s * s for s in target)) or 1
    best = 0.0
    for lag in range(0, max_lag):
        window = heard[lag : lag + len(target)]
        if len(window) < len(target):
            break
        energy = math.sqrt(sum(s * s for s in window)) or 1
        best = max(best, sum(a * b for a, b in zip(window, target, strict=True)) / (energy * target_energy))
    return best
