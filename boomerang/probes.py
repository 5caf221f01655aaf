"""Health probes that speak each service's own protocol: SIP OPTIONS, rtpengine ng ping, HTTP, Redis."""

from __future__ import annotations

import http.client
import secrets
import socket

from boomerang.settings import HostPort


def sip_options(target: HostPort, timeout: float = 1.0) -> int | None:
    """Send one SIP OPTIONS over UDP; the final status code, or None when nothing answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((target.host, target.port))
        local_host, local_port = sock.getsockname()
        branch = "z9hG4bK" + secrets.token_hex(8)
        request = (
            f"OPTIONS sip:{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local_host}:{local_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{local_host}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{target}>\r\n"
            f"Call-ID: {secrets.token_hex(12)}@{local_host}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            sock.send(request.encode())
            while True:
                reply = sock.recv(65535).decode(errors="replace")
                status_line = reply.split("\r\n", 1)[0].split(" ")
                if len(status_line) >= 2 and status_line[0] == "SIP/2.0" and status_line[1].isdigit():
                    code = int(status_line[1])
                    if code >= 200:
                        return code
        except (TimeoutError, ConnectionRefusedError):
            return None


def rtpengine_ping(target: HostPort, timeout: float = 1.0) -> bool:
    """rtpengine's ng "ping" over UDP answers "pong" when the daemon is ready."""
    cookie = secrets.token_hex(6).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(cookie + b" d7:command4:pinge", (target.host, target.port))
            return sock.recv(1024) == cookie + b" d6:result4:ponge"
        except (TimeoutError, ConnectionRefusedError):
            return False


def redis_ping(target: HostPort, timeout: float = 1.0) -> bool:
    """Redis answers PING with +PONG once it serves (not while it loads its data)."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def http_get(target: HostPort, path: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET path, or None when nothing answers."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()
