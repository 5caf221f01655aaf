"""Helpers for tests that run the platform's real programs: free ports, sipp, settings for them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import re
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import update

from boomerang import provisioning, services
from boomerang.settings import HostPort, Settings
from boomerang.store.models import Gateway
from boomerang.supervisor import Supervisor, prepare_database
from callback import bencode
from callback.evapi import KamailioChannel
from tests.dtmfpcap import write_key_press

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


# Ports for the services under test come from below the kernel's ephemeral range (32768 and up on
# Linux), so an outgoing connection can never take one between our check and the service's bind;
# media port ranges for rtpengine come from a separate band.
_SERVICE_PORTS = range(10000, 20000)
_MEDIA_PORTS = range(20000, 32000, 100)
_handed_out: set[int] = set()


def _free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def wait_for(check, timeout: float = 30):
    """Poll `check` every 0.2 s until it gives something true, or `timeout` runs out; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    return check()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both), never handed out twice."""
    for _ in range(1000):
        port = random.choice(_SERVICE_PORTS)
        if port not in _handed_out and _free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def _media_range() -> int:
    for _ in range(1000):
        start = random.choice(_MEDIA_PORTS)
        if start not in _handed_out:
            _handed_out.add(start)
            return start
    raise RuntimeError("no free media port range")


def service_ports() -> dict[str, str]:
    """Setting overrides that give every service its own free port (names as make_settings takes)."""
    media = _media_range()
    return {
        "sip_listen": f"127.0.0.1:{free_port()}",
        "rtpengine_ng_listen": f"127.0.0.1:{free_port()}",
        "rtpengine_ng_tcp_listen": f"127.0.0.1:{free_port()}",
        "controller_evapi_listen": f"127.0.0.1:{free_port()}",
        "portal_listen": f"127.0.0.1:{free_port()}",
        "metrics_listen": f"127.0.0.1:{free_port()}",
        "rtpengine_redis_listen": f"127.0.0.1:{free_port()}",
        "rtpengine_port_min": str(media),
        "rtpengine_port_max": str(media + 99),
        "sip_workers": "2",
        "portal_workers": "1",
    }


def sipp(
    scenario: str,
    target: HostPort,
    *args: str,
    calls: int = 1,
    timeout: float = 20,
    local_ip: str = "127.0.0.1",
) -> subprocess.CompletedProcess:
    """Run a sipp scenario from tests/sipp against target; sipp exits 0 only if every call passed."""
    command = [
        "sipp",
        f"{target.host}:{target.port}",
        "-sf",
        str(SIPP_DIR / scenario),
        "-i",
        local_ip,
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


_EDGES: dict[str, Supervisor] = {}  # the supervisor of each running edge, by its SIP address


def restart_killed(settings: Settings, name: str, meanwhile=None, supervisor: Supervisor | None = None) -> None:
    """kill -9 of one service ("kamailio", "rtpengine" of a running edge; "controller" of the
    `supervisor` that started it), started again as `boomerang run` restarts it; `meanwhile` runs
    while it is down."""
    supervisor = supervisor or _EDGES[str(settings.sip_listen)]
    [running] = [item for item in supervisor.running if item.service.name == name]
    running.process.kill()
    running.process.wait()
    supervisor._stop(running)  # as the supervisor does before a restart: its workers hold its ports
    supervisor.running.remove(running)
    if meanwhile is not None:
        meanwhile()
    supervisor.start(getattr(services, name)(settings))


def forget_media_state(settings: Settings) -> None:
    """Empty the Redis database in which rtpengine keeps its calls: a restart then finds none."""
    redis = settings.rtpengine_redis_listen
    with socket.create_connection((redis.host, redis.port), timeout=5) as connection:
        connection.sendall(f"SELECT {services.RTPENGINE_REDIS_DATABASE}\r\nFLUSHDB\r\n".encode())
        answers = b""
        while answers.count(b"\r\n") < 2:
            answers += connection.recv(64)
    assert answers == b"+OK\r\n+OK\r\n", answers


@contextlib.contextmanager
def running_edge(tmp_path: Path, database_url: str | None = None, **overrides: str) -> Iterator[Settings]:
    """rtpengine (with its Redis) and Kamailio started as `boomerang run` starts them, on free ports, with the demo data
    (127.0.0.1 is the trusted carrier); on SQLite unless `database_url` names another database."""
    from tests.conftest import make_settings

    url = database_url or f"sqlite:///{tmp_path / 'edge.db'}"
    settings = make_settings(tmp_path, url, **{**service_ports(), **overrides})
    supervisor = Supervisor(settings, out=io.StringIO())
    supervisor.prepare_directories()
    prepare_database(settings, io.StringIO())
    try:
        supervisor.start(services.media_store(settings))
        supervisor.start(services.rtpengine(settings))
        supervisor.start(services.kamailio(settings))
        _EDGES[str(settings.sip_listen)] = supervisor
        yield settings
    finally:
        _EDGES.pop(str(settings.sip_listen), None)
        supervisor.stop_all()
    # Kamailio reports memory misuse (double frees...) as CRITICAL and carries on: fail loudly instead.
    log = services.log_dir(settings) / "kamailio.log"
    critical = [line for line in log.read_text(errors="replace").splitlines() if "CRITICAL" in line]
    assert not critical, "\n".join(critical[:5])


def rtpengine_request(settings: Settings, command: dict) -> dict:
    """One ng command to rtpengine over UDP (as Kamailio would send it), and its answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ng:
        ng.settimeout(5)
        ng.sendto(
            # A cookie of its own: rtpengine answers a cookie it has seen with its cached reply.
            f"test{random.getrandbits(48)} ".encode() + bencode.encode(command),
            (settings.rtpengine_ng_listen.host, settings.rtpengine_ng_listen.port),
        )
        cookie, _, reply = ng.recv(65535).partition(b" ")
    answer = bencode.decode_text(bencode.decode(reply))
    assert answer.get("result") == "ok", answer
    return answer


def rtpengine_calls(settings: Settings) -> list[str]:
    """The Call-IDs of the calls rtpengine holds now (its ng `list`)."""
    return list(rtpengine_request(settings, {"command": "list", "limit": 10000}).get("calls", []))


def metric(settings: Settings, name: str) -> float | None:
    """A metric without labels as Kamailio serves it at /metrics, or None when it is not there."""
    with urllib.request.urlopen(f"http://{settings.metrics_listen}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)", text, re.M)
    return float(found.group(1)) if found else None


@dataclass
class WireLeg:
    """One call as a sipp party (the called side) saw it."""

    rung: datetime  # the INVITE it received
    answered: datetime | None = None  # the 200 OK it sent
    bye: datetime | None = None  # the BYE it received: the platform hung up
    hung_up: datetime | None = None  # the BYE it sent: its user hung up
    cancelled: datetime | None = None  # the CANCEL it received while it rang

    @property
    def ended(self) -> datetime | None:
        """When the call ended on the wire, whichever side ended it."""
        return min((at for at in (self.bye, self.hung_up) if at is not None), default=None)


def sipp_calls(trace: Path) -> dict[str, WireLeg]:
    """Per Call-ID, from a sipp trace: when the called side was rung, answered, and how it ended."""
    calls: dict[str, WireLeg] = {}
    blocks = re.split(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n", trace.read_text(errors="replace"), flags=re.M)
    for stamp, text in zip(blocks[1::2], blocks[2::2], strict=True):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").astimezone()
        call_id = re.search(r"^Call-ID: *(\S+)", text, re.M | re.I)
        lines = [line for line in text.splitlines()[1:] if line.strip()]
        if not call_id or not lines:
            continue
        first, sent = lines[0], "message sent" in text.splitlines()[0]
        call = calls.setdefault(call_id.group(1), WireLeg(at))
        if sent and first.startswith("SIP/2.0 200") and re.search(r"^CSeq: *\d+ INVITE", text, re.M):
            call.answered = call.answered or at
        elif not sent and first.startswith("CANCEL "):
            call.cancelled = call.cancelled or at
        elif first.startswith("BYE ") and call.answered is not None:
            if sent:
                call.hung_up = call.hung_up or at
            else:
                call.bye = call.bye or at
    return calls


def wire(trace: Path) -> dict[str, WireLeg]:
    """The answered calls of a sipp trace, by Call-ID."""
    return {call_id: call for call_id, call in sipp_calls(trace).items() if call.answered is not None}


def invites(trace: Path) -> int:
    """How many calls (Call-IDs) reached a sipp party."""
    text = trace.read_text(errors="replace")
    return len(set(re.findall(r"^INVITE sip:[^\n]*\n(?:[^\n]+\n)*?Call-ID: *(\S+)", text, re.M)))


def two_carriers(session, phone_port: int, destination_port: int) -> None:
    """The demo carrier reaches the callers' phones (leg A goes back the way the trigger came); a
    second carrier, tried first for everything else, reaches the destinations."""
    session.execute(update(Gateway).where(Gateway.name == "carrier").values(uri=f"sip:127.0.0.1:{phone_port}"))
    spec = provisioning.GatewaySpec(name="destination", uri=f"sip:127.0.0.1:{destination_port}", priority=1)
    provisioning.add_gateway(session, spec)


class ControllerProbe:
    """Stands where the call controller stands: connected to Kamailio's evapi, recording what arrives."""

    def __init__(self, address: HostPort) -> None:
        self.messages: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._channel = KamailioChannel(address, on_message=self.messages.append)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._task = self._call(self._start())
        self._call(self._channel.connected.wait())
        self._call(self._channel.ping())

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _start(self) -> asyncio.Task:
        return asyncio.get_running_loop().create_task(self._channel.run())

    async def _stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in list(self.messages) if m.get("type") == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.of_type(kind)) < count:
            time.sleep(0.02)
        return self.of_type(kind)

    def send(self, message: dict) -> None:
        self._loop.call_soon_threadsafe(self._channel.send, message)

    def close(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class GatewaySim:
    """A simulated carrier gateway: sipp running a tests/sipp/gw_*.xml scenario as the called side.

    `finish()` waits for the scenario to end and returns sipp's exit code (0: every step happened) and
    the SIP messages it exchanged, so a test can read what we sent it.
    """

    def __init__(self, scenario: str | Path, port: int, workdir: Path, timeout: float = 30, calls: int = 1) -> None:
        self.trace = workdir / f"{Path(scenario).name}-{port}-messages.log"
        self.process = subprocess.Popen(
            [
                "sipp", "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(port), "-m", str(calls),
                "-mi", "127.0.0.1", "-mp", str(free_port()),
                "-timeout", f"{int(timeout)}s", "-nostdin", "-trace_msg", "-message_file", str(self.trace),
            ],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir,
        )  # fmt: skip
        self.timeout = timeout
        time.sleep(0.3)  # let it bind its port

    def finish(self) -> tuple[int, str]:
        try:
            output, _ = self.process.communicate(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        messages = self.trace.read_text(errors="replace") if self.trace.exists() else ""
        return self.process.returncode, messages + "\n" + output[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


# One key pressed as SIP INFO (application/dtmf-relay) by the phone, inside the call it answered.
_INFO_KEY = """  <send retrans="500">
    <![CDATA[
      INFO [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:phone@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$caller]
      [last_Call-ID:]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
"""


def phone_scenario(
    workdir: Path,
    keys: str,
    wait_ms: int = 1500,
    gap_ms: int = 400,
    hang_up_after_ms: int | None = None,
    dtmf: str = "rfc4733",
    audio_after_keys: Path | None = None,
    listen_on: int | None = None,
) -> Path:
    """A sipp scenario for the user's phone: answer, wait `wait_ms`, key `keys` as RFC 4733 events
    (or as SIP INFO with `dtmf="info"`), then wait for the platform's BYE, or hang up itself
    `hang_up_after_ms` after the last key. `audio_after_keys`: a pcap the phone plays after its keys
    (sipp plays one pcap at a time per call: a key press stops the audio before it). `listen_on`: the
    media port the phone's answer names instead of sipp's own, so a test can hear what the phone
    would (the phone then sends no audio of its own: rtpengine would follow it to sipp's port).

    `keys` may hold pauses: "0012025550143#|9000|#11" keys a number, waits 9 s, keys #11.
    """
    steps = []
    presses = 0
    for index, part in enumerate(keys.split("|")):
        if index % 2:
            steps.append(f'  <pause milliseconds="{int(part)}"/>\n')
            continue
        for position, key in enumerate(part):
            if dtmf == "info":
                steps.append(_INFO_KEY.replace("{cseq}", str(2 + presses)).replace("{key}", key))
            else:
                pcap = write_key_press(workdir / f"key-{presses}-{ord(key)}.pcap", key, presses)
                steps.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n')
            presses += 1
            if position < len(part) - 1:  # nothing after a group's last key: the platform may act at once
                steps.append(f'  <pause milliseconds="{gap_ms}"/>\n')
    if audio_after_keys is not None:
        steps.append(f'  <nop><action><exec play_pcap_audio="{audio_after_keys}"/></action></nop>\n')
    presses_text = "".join(steps)
    name = "phone_template.xml" if hang_up_after_ms is None else "phone_hangup_template.xml"
    text = (SIPP_DIR / name).read_text().replace("{wait_ms}", str(wait_ms)).replace("{keys}", presses_text)
    text = text.replace("{bye_cseq}", str(2 + presses))
    if listen_on is not None:
        text = text.replace("m=audio [media_port]", f"m=audio {listen_on}")
        text = text.replace(
            '  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>\n', ""
        )
    path = workdir / f"phone-{abs(hash((keys, wait_ms, hang_up_after_ms, dtmf, str(audio_after_keys), listen_on)))}.xml"
    path.write_text(text.replace("{stay_ms}", str(hang_up_after_ms or 0)))
    return path
