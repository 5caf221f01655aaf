"""What crossed the loopback interface, as tcpdump captured it: UDP datagrams with their times.

Benchmarks time calls where a user would, on the wire: the busy sent to a caller, the INVITE that
reaches a phone, the phone's answer and the first audio that follows it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Link-layer header lengths by pcap link type: Ethernet (tcpdump -i lo), Linux cooked v1 and v2.
_LINK_HEADER = {1: 14, 113: 16, 276: 20}


@dataclass(frozen=True)
class Datagram:
    at: float  # capture time, seconds since the epoch
    source_port: int
    destination_port: int
    payload: bytes


@contextlib.contextmanager
def capture(path: Path, ports: list[int], destination_ports: list[int]) -> Iterator[None]:
    """tcpdump on lo while the block runs: UDP to or from `ports`, and UDP to `destination_ports`."""
    wanted = [f"port {port}" for port in ports] + [f"dst port {port}" for port in destination_ports]
    expression = "udp and (" + " or ".join(wanted) + ")"
    process = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-B", "65536", "-s", "2048", "-w", str(path), expression],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1)  # tcpdump listens once it has opened the interface
    try:
        yield
    finally:
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=30)
        dropped = re.search(rb"(\d+) packets dropped by kernel", errors)
        if dropped and int(dropped.group(1)):
            raise RuntimeError(f"tcpdump lost {dropped.group(1).decode()} packets: the timings would be wrong")


def datagrams(path: Path) -> Iterator[Datagram]:
    """The IPv4 UDP datagrams of a pcap file, in capture order."""
    data = path.read_bytes()
    magic, _, _, _, _, _, link_type = struct.unpack_from("<IHHiIII", data)
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError(f"{path}: not a little-endian pcap file")
    fraction = 1e-6 if magic == 0xA1B2C3D4 else 1e-9
    link = _LINK_HEADER[link_type]
    offset = 24
    while offset + 16 <= len(data):
        seconds, fractions, captured, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = frame[link:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4 :]
        source_port, destination_port = struct.unpack_from("!HH", udp)
        yield Datagram(seconds + fractions * fraction, source_port, destination_port, udp[8:])


@dataclass(frozen=True)
class SipMessage:
    first_line: str
    headers: dict[str, str]  # by lower-case name, the first of each
    body: str

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    def user(self, header: str) -> str:
        """The user part of a From/To header's URI, without a leading +."""
        found = re.search(r"sips?:\+?([^@;>]+)@", self.headers.get(header, ""))
        return found.group(1) if found else ""


_COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length"}


def sip(payload: bytes) -> SipMessage | None:
    """The SIP message in a datagram, or None when it holds none (RTP, keep-alives)."""
    if not payload[:1].isalpha():
        return None
    head, _, body = payload.decode("latin-1").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            name = name.strip().lower()
            headers.setdefault(_COMPACT.get(name, name), value.strip())
    return SipMessage(lines[0], headers, body)
