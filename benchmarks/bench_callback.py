"""How many simultaneous regular callbacks this machine carries, timed on the wire.

The whole platform runs as `make run` runs it (rtpengine, Kamailio, the call controller, SQLite).
Each step has N callers, each with an account and an authorized caller ID; they dial the access
number at TRIGGERS_PER_SECOND. The platform rings them, rejects them busy and calls each back after
the access number's delay. The phone (sipp, behind the demo carrier) answers, keys a destination
ahead of the balance prompt (RFC 4733) and sends audio; the destination (sipp, behind a second
carrier) answers and sends audio; HOLD_MS after its keys the phone hangs up. So every session goes
through the IVR and then the bridge, with RTP flowing both ways through rtpengine, and the sessions
of a step are all up together.

tcpdump on lo times what a user would notice: the callback delay (the busy sent to the caller, to
the INVITE reaching the phone, against the configured delay), and how soon audio (the first prompt)
reaches the phone after it answers (its 200 OK). A step is carried when every callback was placed
and bridged, every delay was within DELAY_TOLERANCE and every prompt started within PROMPT_BUDGET.
"""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from benchmarks import wire
from boomerang import provisioning, services
from boomerang.settings import load
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import AccessNumber, CallbackSession, CallLeg, LegRole
from boomerang.supervisor import Supervisor, prepare_database
from tests.dtmfpcap import write_audio
from tests.servicekit import free_port, phone_scenario, two_carriers

HERE = Path(__file__).resolve().parent / "sip"
ACCESS = "123555555"
RING_SECONDS = 1
DELAY_SECONDS = 3
STEPS = [50, 100, 150, 200, 250]
TRIGGERS_PER_SECOND = 20
DESTINATION_KEYS = "0012025550143#"
HOLD_MS = 40_000
DELAY_TOLERANCE = 0.250
PROMPT_BUDGET = 0.300


@dataclass
class StepResult:
    sessions: int
    placed: int = 0
    bridged: int = 0
    peak: int = 0
    delay_errors: list[float] = field(default_factory=list)
    prompt_latencies: list[float] = field(default_factory=list)

    @property
    def carried(self) -> bool:
        return (
            self.placed == self.bridged == self.sessions
            and len(self.delay_errors) == len(self.prompt_latencies) == self.sessions
            and max(abs(error) for error in self.delay_errors) <= DELAY_TOLERANCE
            and max(self.prompt_latencies) <= PROMPT_BUDGET
        )


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return f"p50 {at(0.5):.0f} / p99 {at(0.99):.0f} / max {1000 * ordered[-1]:.0f} ms"


class Bench:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.phone_port, self.phone_media_port = free_port(), free_port()
        self.destination_port, self.destination_media_port = free_port(), free_port()
        environ = {
            "BOOMERANG_DATABASE_URL": f"sqlite:///{directory / 'bench.db'}",
            "BOOMERANG_PATHS_VAR_DIR": str(directory / "var"),
            "BOOMERANG_SIP_LISTEN": f"127.0.0.1:{free_port()}",
            "BOOMERANG_RTPENGINE_NG_LISTEN": f"127.0.0.1:{free_port()}",
            "BOOMERANG_RTPENGINE_NG_TCP_LISTEN": f"127.0.0.1:{free_port()}",
            "BOOMERANG_RTPENGINE_PORT_MIN": "20000",
            "BOOMERANG_RTPENGINE_PORT_MAX": "31999",
            "BOOMERANG_CONTROLLER_EVAPI_LISTEN": f"127.0.0.1:{free_port()}",
            "BOOMERANG_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
            "BOOMERANG_PORTAL_LISTEN": f"127.0.0.1:{free_port()}",
            "BOOMERANG_TRIGGERS_PER_SECOND": "100000",
            "BOOMERANG_LOG_LEVEL": "warning",
        }
        self.settings = load(environ)
        self.supervisor = Supervisor(self.settings, out=io.StringIO())
        self.supervisor.prepare_directories()
        prepare_database(self.settings, io.StringIO())
        self.engine = make_engine(self.settings.database_url)
        self.sessions = session_factory(self.engine)
        self._provision_network()
        audio = write_audio(directory / "audio.pcap", (HOLD_MS + 20_000) // 1000)
        self.phone_scenario = phone_scenario(
            directory, DESTINATION_KEYS, wait_ms=1000, gap_ms=150, hang_up_after_ms=HOLD_MS, audio_after_keys=audio
        )
        self.destination_scenario = directory / "destination.xml"
        self.destination_scenario.write_text(
            (HERE / "callback_destination.xml").read_text().replace("{audio}", str(audio))
        )

    def _provision_network(self) -> None:
        """The demo carrier reaches the phones; a second carrier, tried first, the destinations."""
        with transaction(self.sessions) as session:
            two_carriers(session, self.phone_port, self.destination_port)
            provisioning.add_access_number(
                session,
                provisioning.AccessNumberSpec(
                    number=ACCESS, ring_time_seconds=RING_SECONDS, callback_delay_seconds=DELAY_SECONDS
                ),
            )
            assert session.execute(select(AccessNumber.announce_balance).where(AccessNumber.number == ACCESS)).scalar()

    def start(self) -> None:
        self.supervisor.start(services.media_store(self.settings))
        self.supervisor.start(services.rtpengine(self.settings))
        self.supervisor.start(services.kamailio(self.settings))
        self.supervisor.start(services.controller(self.settings))

    def stop(self) -> None:
        self.supervisor.stop_all()
        self.engine.dispose()

    def callers(self, step: int, count: int) -> list[str]:
        """`count` callers with an account each (10.00 USD) and their number authorized."""
        numbers = [f"4477{step:02d}{index:06d}" for index in range(count)]
        with transaction(self.sessions) as session:
            for number in numbers:
                login = f"caller{number}"
                spec = provisioning.AccountSpec(login=login, currency="USD", tariff="demo")
                provisioning.create_account(session, spec)
                provisioning.top_up(session, login, Decimal("10.00"), reference=f"{login}:credit")
                provisioning.add_caller_id(session, login, "+" + number)
        return numbers

    def run_step(self, step: int, count: int) -> StepResult:
        callers = self.callers(step, count)
        injection = self.directory / f"callers-{step}.csv"
        injection.write_text("SEQUENTIAL\n" + "".join(f"+{number};\n" for number in callers))
        trigger_port = free_port()
        capture = self.directory / f"step-{step}.pcap"
        result = StepResult(count)
        with wire.capture(capture, [trigger_port, self.phone_port], [self.phone_media_port]):
            phone = self._sipp(self.phone_scenario, self.phone_port, self.phone_media_port, count)
            destination = self._sipp(
                self.destination_scenario, self.destination_port, self.destination_media_port, count
            )
            triggers = subprocess.run(
                [
                    "sipp", str(self.settings.sip_listen), "-sf", str(HERE / "trigger_load.xml"), "-s", ACCESS,
                    "-inf", str(injection), "-i", "127.0.0.1", "-p", str(trigger_port), "-r", str(TRIGGERS_PER_SECOND),
                    "-m", str(count), "-timeout", f"{count // TRIGGERS_PER_SECOND + 30}s", "-nostdin",
                ],
                capture_output=True, text=True, timeout=count // TRIGGERS_PER_SECOND + 60, cwd=self.directory,
            )  # fmt: skip
            if triggers.returncode != 0:
                print(f"  some triggers failed: {triggers.stdout[-600:]}")
            for sipp in (phone, destination):
                try:
                    sipp.wait(timeout=HOLD_MS / 1000 + 90)
                except subprocess.TimeoutExpired:
                    sipp.kill()
                    sipp.wait()
            self._wait_until_over(callers)
        result.bridged = self._bridged(callers)
        self._read_wire(capture, trigger_port, set(callers), result)
        capture.unlink()
        return result

    def _sipp(self, scenario: Path, port: int, media_port: int, count: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                "sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-m", str(count),
                "-mi", "127.0.0.1", "-mp", str(media_port), "-timeout", f"{HOLD_MS // 1000 + 80}s", "-nostdin",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory,
        )  # fmt: skip

    def _wait_until_over(self, callers: list[str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with transaction(self.sessions) as session:
                running = session.execute(
                    select(func.count())
                    .select_from(CallbackSession)
                    .where(CallbackSession.caller_number.in_(callers), CallbackSession.ended_at.is_(None))
                ).scalar_one()
            if not running:
                return
            time.sleep(1)

    def _bridged(self, callers: list[str]) -> int:
        with transaction(self.sessions) as session:
            return session.execute(
                select(func.count())
                .select_from(CallLeg)
                .join(CallbackSession, CallLeg.session_id == CallbackSession.id)
                .where(
                    CallbackSession.caller_number.in_(callers),
                    CallLeg.role == LegRole.B,
                    CallLeg.answered_at.is_not(None),
                )
            ).scalar_one()

    def _read_wire(self, capture: Path, trigger_port: int, callers: set[str], result: StepResult) -> None:
        busy_at: dict[str, float] = {}
        invited: dict[str, tuple[str, float, int]] = {}  # call-id: caller, when, rtpengine's port
        answered: dict[str, float] = {}
        hung_up: dict[str, float] = {}
        awaiting_audio: dict[int, str] = {}  # rtpengine port: call-id answered, no audio yet
        audio_at: dict[str, float] = {}
        for datagram in wire.datagrams(capture):
            if datagram.destination_port == self.phone_media_port:
                call_id = awaiting_audio.pop(datagram.source_port, None)
                if call_id is not None:
                    audio_at[call_id] = datagram.at
                continue
            message = wire.sip(datagram.payload)
            if message is None:
                continue
            if datagram.destination_port == trigger_port and message.first_line.startswith("SIP/2.0 486"):
                busy_at.setdefault(message.user("from"), datagram.at)
            elif datagram.destination_port == self.phone_port and message.first_line.startswith("INVITE"):
                port = re.search(r"m=audio (\d+)", message.body)
                if message.call_id not in invited and port:
                    invited[message.call_id] = (message.user("to"), datagram.at, int(port.group(1)))
            elif datagram.source_port == self.phone_port and message.call_id in invited:
                if message.first_line.startswith("SIP/2.0 200") and "INVITE" in message.headers.get("cseq", ""):
                    if message.call_id not in answered:
                        answered[message.call_id] = datagram.at
                        awaiting_audio[invited[message.call_id][2]] = message.call_id
                elif message.first_line.startswith("BYE"):
                    hung_up.setdefault(message.call_id, datagram.at)
        mine = {call_id: seen for call_id, seen in invited.items() if seen[0] in callers}
        result.placed = len({caller for caller, _, _ in mine.values()})
        for call_id, (caller, at, _) in mine.items():
            if caller in busy_at:
                result.delay_errors.append(at - busy_at[caller] - DELAY_SECONDS)
            if call_id in answered and call_id in audio_at:
                result.prompt_latencies.append(audio_at[call_id] - answered[call_id])
        edges = sorted(
            [(answered[c], 1) for c in mine if c in answered] + [(hung_up[c], -1) for c in mine if c in hung_up]
        )
        up = 0
        for _, change in edges:
            up += change
            result.peak = max(result.peak, up)


def main(context) -> None:
    carried = 0
    with tempfile.TemporaryDirectory(prefix="bench-callback-") as tmp:
        bench = Bench(Path(tmp))
        bench.start()
        try:
            for step, count in enumerate(STEPS):
                result = bench.run_step(step, count)
                print(
                    f"  {count:>4} callbacks: placed {result.placed}, bridged {result.bridged}, "
                    f"up together at most {result.peak}; callback delay error {_ms(result.delay_errors)}; "
                    f"first prompt after answer {_ms(result.prompt_latencies)}; "
                    + ("carried" if result.carried else "NOT carried")
                )
                if not result.carried:
                    break
                carried = count
        finally:
            bench.stop()
    print(
        f"simultaneous callback sessions carried: {carried} (target 200; delay within "
        f"±{DELAY_TOLERANCE * 1000:.0f} ms, first prompt within {PROMPT_BUDGET * 1000:.0f} ms of answer)"
    )
