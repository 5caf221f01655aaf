"""Access-number triggers per second with zero failed calls: our Kamailio + KEMI against a native baseline.

Both run the same number of workers and ring for 1 s before 486. Ours also checks the carrier's
trust, the trigger limits and the access number, records the callback request in the database
(SQLite) and notifies the controller. The baseline (benchmarks/sip/native_trigger.cfg) does only
180, wait, 486. sipp raises the rate step by step (each step a bounded number of calls, every
caller distinct) until a step has a failed call; the figure is the highest rate without one.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from boomerang import probes, provisioning, services
from boomerang.settings import HostPort, load
from boomerang.store import make_engine, session_factory, transaction
from boomerang.supervisor import Supervisor, prepare_database, stop_group
from tests.servicekit import free_port

HERE = Path(__file__).resolve().parent / "sip"
ACCESS = "123666666"
RING_SECONDS = 1
WORKERS = 4
RATES = [100, 200, 400, 600, 800, 900, 1000, 1100, 1200, 1400, 1600]
STEP_SECONDS = 4


def _sipp_step(target: HostPort, rate: int, callers: Path) -> tuple[int, int]:
    calls = rate * STEP_SECONDS
    result = subprocess.run(
        [
            "sipp", f"{target.host}:{target.port}", "-sf", str(HERE / "trigger_load.xml"), "-s", ACCESS,
            "-inf", str(callers), "-i", "127.0.0.1", "-p", str(free_port()), "-r", str(rate), "-m", str(calls),
            "-timeout", f"{STEP_SECONDS + 20}s", "-nostdin", "-max_socket", "10000",
        ],
        capture_output=True, text=True, timeout=STEP_SECONDS + 40, cwd=callers.parent,
    )  # fmt: skip
    successful = _cumulative(result.stdout, "Successful call")
    failed = _cumulative(result.stdout, "Failed call")
    return successful, failed + (calls - successful - failed)


def _cumulative(screen: str, counter: str) -> int:
    values = re.findall(rf"{counter}\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(values[-1]) if values else 0


def _callers(directory: Path, step: int, count: int) -> Path:
    path = directory / f"callers-{step}.csv"
    path.write_text("SEQUENTIAL\n" + "".join(f"+4477{step:02d}{i:06d};\n" for i in range(count)))
    return path


def group_cpu_seconds(group: int) -> float:
    """User and system CPU time of the live processes in a process group (Kamailio and its workers)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def ladder(name: str, target: HostPort, directory: Path, first_step: int, group: int) -> tuple[int, float]:
    """The highest rate without a failed call, and Kamailio's CPU milliseconds per trigger at that rate."""
    best, cpu_per_trigger = 0, float("nan")
    for index, rate in enumerate(RATES):
        callers = _callers(directory, first_step + index, rate * STEP_SECONDS)
        cpu_before = group_cpu_seconds(group)
        successful, failed = _sipp_step(target, rate, callers)
        time.sleep(RING_SECONDS + 1)  # let the last calls finish ringing
        cpu = group_cpu_seconds(group) - cpu_before
        print(
            f"  {name:<8} {rate:>5} triggers/s offered: {successful:>6} handled, {failed} failed, "
            f"Kamailio CPU {1000 * cpu / max(successful, 1):.3f} ms per trigger"
        )
        if failed:
            break
        best, cpu_per_trigger = rate, 1000 * cpu / successful
    return best, cpu_per_trigger


def _ours(directory: Path) -> tuple[int, float]:
    environ = {
        "BOOMERANG_DATABASE_URL": f"sqlite:///{directory / 'bench.db'}",
        "BOOMERANG_PATHS_VAR_DIR": str(directory / "var"),
        "BOOMERANG_SIP_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_CONTROLLER_EVAPI_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "BOOMERANG_SIP_WORKERS": str(WORKERS),
        "BOOMERANG_TRIGGERS_PER_SECOND": "100000",
        "BOOMERANG_LOG_LEVEL": "warning",
    }
    settings = load(environ)
    supervisor = Supervisor(settings, out=io.StringIO())
    supervisor.prepare_directories()
    prepare_database(settings, io.StringIO())
    engine = make_engine(settings.database_url)
    with transaction(session_factory(engine)) as session:
        provisioning.add_access_number(
            session, provisioning.AccessNumberSpec(number=ACCESS, ring_time_seconds=RING_SECONDS)
        )
    engine.dispose()
    try:
        supervisor.start(services.kamailio(settings))
        return ladder("ours", settings.sip_listen, directory, 0, supervisor.running[0].process.pid)
    finally:
        supervisor.stop_all()


def _native(directory: Path) -> tuple[int, float]:
    target = HostPort("127.0.0.1", free_port())
    process = subprocess.Popen(
        [
            "kamailio", "-f", str(HERE / "native_trigger.cfg"), "-DD", "-E", "-Y", str(directory),
            "-A", f"LISTEN=udp:{target}", "-A", f"WORKERS={WORKERS}", "-A", f"RING_MS={RING_SECONDS * 1000}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while probes.sip_options(target, timeout=0.3) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return ladder("native", target, directory, 50, process.pid)
    finally:
        stop_group(process)


def main(context) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        directory = Path(tmp)
        native, native_cpu = _native(directory)
        ours, ours_cpu = _ours(directory)
    ratio = ours / native if native else float("nan")
    print(
        f"triggers/s with zero failed calls: ours {ours}, native baseline {native}, ratio {ratio:.2f} "
        f"(target >= 0.70); Kamailio CPU per trigger: ours {ours_cpu:.3f} ms, native {native_cpu:.3f} ms"
    )
