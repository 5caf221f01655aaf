"""Helpers for tests that run the platform's real programs: free ports, sipp, settings for them."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from boomerang.settings import HostPort

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


def service_ports() -> dict[str, str]:
    """Setting overrides that give every service its own free port (names as make_settings takes)."""
    media = free_port()
    return {
        "sip_listen": f"127.0.0.1:{free_port()}",
        "rtpengine_ng_listen": f"127.0.0.1:{free_port()}",
        "rtpengine_ng_tcp_listen": f"127.0.0.1:{free_port()}",
        "controller_evapi_listen": f"127.0.0.1:{free_port()}",
        "portal_listen": f"127.0.0.1:{free_port()}",
        "rtpengine_port_min": str(20000 + media % 20000),
        "rtpengine_port_max": str(20000 + media % 20000 + 99),
        "sip_workers": "2",
        "portal_workers": "1",
    }


def sipp(
    scenario: str, target: HostPort, *args: str, calls: int = 1, timeout: float = 20
) -> subprocess.CompletedProcess:
    """Run a sipp scenario from tests/sipp against target; sipp exits 0 only if every call passed."""
    command = [
        "sipp",
        f"{target.host}:{target.port}",
        "-sf",
        str(SIPP_DIR / scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-m",
        str(calls),
        "-timeout",
        f"{int(timeout)}s",
        "-nostdin",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout + 10)
