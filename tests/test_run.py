"""`boomerang run` and `make run`: the whole platform up, answering, and gone without a trace."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from boomerang import probes
from boomerang.settings import PROJECT_ROOT, HostPort
from tests.servicekit import service_ports, sipp

pytestmark = pytest.mark.sip

BOOMERANG = str(Path(sys.executable).parent / "boomerang")
SERVICES = ("media_store", "rtpengine", "kamailio", "controller", "portal")


def platform_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BOOMERANG_")}
    env["BOOMERANG_DATABASE_URL"] = f"sqlite:///{tmp_path / 'platform.db'}"
    env["BOOMERANG_PATHS_VAR_DIR"] = str(tmp_path / "var")
    env.update({f"BOOMERANG_{name.upper()}": value for name, value in service_ports().items()})
    return env


def address(env: dict[str, str], name: str) -> HostPort:
    host, port = env[f"BOOMERANG_{name.upper()}"].rsplit(":", 1)
    return HostPort(host, int(port))


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until_up(process: subprocess.Popen, timeout: float = 90) -> dict[str, int]:
    """Read the start-up report; returns each service's pid."""
    pids: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"the platform exited before it was up: {process.stderr.read()}")
        match = re.match(r"(\w+)\s+pid (\d+)", line)
        if match and match.group(1) in SERVICES:
            pids[match.group(1)] = int(match.group(2))
        if line.startswith("all services up"):
            return pids
    pytest.fail("the platform did not come up in time")


def processes_in_groups(groups: set[int]) -> list[str]:
    """Processes still alive (zombies excluded) in the given process groups."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp in groups and state != "Z":
            alive.append(f"{stat.parent.name} ({(stat.parent / 'comm').read_text().strip()})")
    return alive


def stop(process: subprocess.Popen, sig: int, group: bool = False) -> int:
    if group:
        os.killpg(process.pid, sig)  # as a terminal delivers Ctrl-C: to the whole foreground group
    else:
        process.send_signal(sig)
    return process.wait(timeout=60)


def test_boomerang_run_serves_sip_and_portal_and_sigterm_leaves_nothing(tmp_path):
    env = platform_env(tmp_path)
    process = start([BOOMERANG, "run"], env)
    try:
        pids = wait_until_up(process)
        assert set(pids) == set(SERVICES)
        assert sipp("options.xml", address(env, "sip_listen")).returncode == 0
        assert probes.http_get(address(env, "portal_listen"), "/api/health") == 200
        assert probes.http_get(address(env, "portal_listen"), "/login") == 200  # the sign-in page
        groups = set(pids.values())
        assert len(processes_in_groups(groups)) > len(SERVICES)  # Kamailio and gunicorn have workers
    finally:
        code = stop(process, signal.SIGTERM)
    assert code == 0
    assert processes_in_groups(groups) == []
    assert probes.sip_options(address(env, "sip_listen"), timeout=0.5) is None


def test_make_run_starts_the_platform_and_ctrl_c_stops_it_all(tmp_path):
    env = platform_env(tmp_path)
    process = start(["make", "-s", "run"], env)
    try:
        pids = wait_until_up(process, timeout=600)  # the first run may install packages
        assert sipp("options.xml", address(env, "sip_listen")).returncode == 0
        assert probes.http_get(address(env, "portal_listen"), "/api/health") == 200
    finally:
        stop(process, signal.SIGINT, group=True)
    assert processes_in_groups(set(pids.values())) == []

    # A second run reuses the database: no second load of the demo data, the data is still there.
    process = start([BOOMERANG, "run"], env)
    try:
        wait_until_up(process)
    finally:
        stop(process, signal.SIGTERM)
    output = process.stdout.read()
    assert "demo data loaded" not in output
    shown = subprocess.run([BOOMERANG, "account", "show", "demo"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and "balance\t10.000000" in shown.stdout


def test_a_port_in_use_is_named_in_one_line(tmp_path):
    env = platform_env(tmp_path)
    portal = address(env, "portal_listen")
    with socket.socket() as squatter:
        squatter.bind((portal.host, portal.port))
        squatter.listen()
        result = subprocess.run([BOOMERANG, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 5
    message = result.stderr.strip()
    assert "\n" not in message
    assert f"tcp port {portal.port} on 127.0.0.1 is already in use (portal.listen)" in message
    assert "BOOMERANG_PORTAL_LISTEN" in message


def test_a_bad_config_value_is_named_in_one_line(tmp_path):
    env = platform_env(tmp_path)
    env["BOOMERANG_RTPENGINE_MEDIA_ADDRESS"] = "not-an-address"
    result = subprocess.run([BOOMERANG, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 5
    message = result.stderr.strip()
    assert "\n" not in message
    assert "rtpengine.media_address = 'not-an-address'" in message
    assert "BOOMERANG_RTPENGINE_MEDIA_ADDRESS" in message
    assert not (tmp_path / "platform.db").exists()  # nothing was started or created


def test_a_service_that_dies_is_restarted_while_the_others_keep_serving(tmp_path):
    env = platform_env(tmp_path)
    process = start([BOOMERANG, "run"], env)
    sip, portal = address(env, "sip_listen"), address(env, "portal_listen")
    try:
        pids = wait_until_up(process)
        for name in ("controller", "kamailio", "rtpengine", "media_store", "portal"):
            os.kill(pids[name], signal.SIGKILL)
            killed = time.monotonic()
            # The platform answers again within 10 s, and the supervisor reports the new process.
            restarted = wait_for_line(process, rf"{name}\s+pid (\d+)", timeout=10)
            if not restarted:
                stop(process, signal.SIGTERM)
                pytest.fail(f"{name} not restarted within 10 s: {process.stderr.read()}")
            assert int(restarted.group(1)) != pids[name]
            pids[name] = int(restarted.group(1))
            while probes.sip_options(sip, timeout=0.3) != 200 or probes.http_get(portal, "/api/health") != 200:
                assert time.monotonic() - killed < 10, f"not serving 10 s after {name} was killed"
                time.sleep(0.2)
        assert process.poll() is None  # `boomerang run` itself carried on
        # Each restart is counted in the metrics (Kamailio serves them, so those before its own
        # restart went with it).
        with urllib.request.urlopen(f"http://{address(env, 'metrics_listen')}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        for name in ("kamailio", "rtpengine", "media_store", "portal"):
            assert f'boomerang_service_restarts_total{{service="{name}"}} 1' in metrics, metrics[-2000:]
        log = (tmp_path / "var" / "log" / "controller.log").read_text()
        # Connected at each of its own starts (2), and again to each engine once it was back.
        assert log.count("kamailio: connected to") >= 3 and log.count("rtpengine: connected to") >= 3
    finally:
        code = stop(process, signal.SIGTERM)
    assert code == 0
    assert processes_in_groups(set(pids.values())) == []


def wait_for_line(process: subprocess.Popen, pattern: str, timeout: float):
    """The next line of the supervisor's report matching `pattern`, read within `timeout` s (by a
    thread: a select on the pipe would miss lines already in the reader's buffer)."""
    lines = getattr(process, "lines", None)
    if lines is None:
        lines = process.lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return None
        if match := re.search(pattern, line):
            return match
    return None
