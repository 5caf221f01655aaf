"""RTP as pcap files for sipp's play_pcap_audio: RFC 4733 key presses, and plain audio streams.

sipp replays a pcap as it is, so the same digit twice from one stock pcap carries the same RTP
timestamp and a receiver rightly takes the second for a retransmission of the first. These files give
each key press its own timestamp and sequence numbers, as a phone would.
"""

from __future__ import annotations

import struct
from pathlib import Path

EVENTS = {"*": 10, "#": 11, **{str(d): d for d in range(10)}}
PAYLOAD_TYPE = 101
PACKET_MS = 20


PCMA_PAYLOAD_TYPE = 8
PCMA_SILENCE = b"\xd5" * 160  # 20 ms of A-law silence


def _packet(seq: int, timestamp: int, event: int, end: bool, duration: int, marker: bool) -> bytes:
    payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
    return _udp_frame(PAYLOAD_TYPE, seq, timestamp, marker, payload)


def _udp_frame(payload_type: int, seq: int, timestamp: int, marker: bool, payload: bytes) -> bytes:
    rtp = struct.pack(
        "!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, 0x0B00E4A6
    )
    udp_body = rtp + payload
    udp = struct.pack("!HHHH", 6000, 6000, 8 + len(udp_body), 0) + udp_body
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    )
    return b"\x00" * 12 + b"\x08\x00" + ip + udp  # Ethernet header: addresses unused by sipp


def write_key_press(path: Path, digit: str, press: int) -> Path:
    """One key press (`press` makes its timestamp unique): 8 packets of 20 ms, the last 3 marked end."""
    records = []
    base_ts, base_seq = 160_000 * (press + 1), 1000 * (press + 1)
    for index in range(8):
        end = index >= 5
        duration = min(index, 5) * 160 + 160
        packet = _packet(base_seq + index, base_ts, EVENTS[digit], end, duration, marker=index == 0)
        seconds, micros = divmod(index * PACKET_MS * 1000, 1_000_000)
        records.append(struct.pack("<IIII", 1_700_000_000 + seconds, micros, len(packet), len(packet)) + packet)
    return _write(path, records)


def write_audio(path: Path, seconds: int) -> Path:
    """`seconds` of PCMA audio (payload type 8) in 20 ms packets: a phone that keeps sending media."""
    records = []
    for index in range(seconds * 1000 // PACKET_MS):
        packet = _udp_frame(PCMA_PAYLOAD_TYPE, index, index * 160, index == 0, PCMA_SILENCE)
        stamp, micros = divmod(index * PACKET_MS * 1000, 1_000_000)
        records.append(struct.pack("<IIII", 1_700_000_000 + stamp, micros, len(packet), len(packet)) + packet)
    return _write(path, records)


def _write(path: Path, records: list[bytes]) -> Path:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(records))
    return path
