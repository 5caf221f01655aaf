"""The container deployment (docker/compose.yaml), started with podman and checked from outside.

Run by `make docker-test` (scripts/docker-test.sh), which installs podman and podman-compose, makes the
base image and builds the images first; skipped otherwise. The stack runs on the host's network with
every port chosen free for this run, the demo carrier gateway pointing at a sipp UAS of ours.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from boomerang import probes
from boomerang.settings import PROJECT_ROOT, HostPort
from tests.servicekit import GatewaySim, free_port, service_ports, sipp

COMPOSE = os.environ.get("DOCKER_TEST_COMPOSE", "")  # the podman-compose program
PROJECT = "boomerangtest"
LOG_DIR = PROJECT_ROOT / "var" / "docker-test" / "logs"
SERVICES = ("db", "media_store", "rtpengine", "kamailio", "controller", "portal")
START_TIMEOUT = 240.0
DEMO_ACCESS = "123333333"

pytestmark = pytest.mark.skipif(not COMPOSE, reason="run by `make docker-test`")


@dataclass
class Stack:
    env: dict[str, str]
    sip: HostPort
    portal: HostPort
    carrier_port: int

    def compose(self, *args: str, timeout: float = 180, stdin: str | None = None) -> subprocess.CompletedProcess:
        command = [COMPOSE, "--project-name", PROJECT, "--file", str(PROJECT_ROOT / "docker" / "compose.yaml"), *args]
        # Its own process group: on a timeout the podman commands it started go too.
        process = subprocess.Popen(
            command,
            env=self.env,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"podman-compose {' '.join(args)} did not finish within {timeout:.0f} s: {stderr[-2000:]}")
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


def container(service: str) -> str:
    names = podman(
        "ps", "--all", "--format", "{{.Names}}",
        "--filter", f"label=com.docker.compose.project={PROJECT}",
        "--filter", f"label=com.docker.compose.service={service}",
    ).stdout.split()  # fmt: skip
    assert len(names) == 1, f"containers of {service}: {names}"
    return names[0]


def healthy(service: str) -> bool:
    return podman("healthcheck", "run", container(service), timeout=30).returncode == 0


def wait_healthy(services: tuple[str, ...], timeout: float = START_TIMEOUT) -> None:
    """podman on a host without systemd schedules no health checks: run them until all pass."""
    deadline = time.monotonic() + timeout
    waiting = list(services)
    while waiting and time.monotonic() < deadline:
        waiting = [service for service in waiting if not healthy(service)]
        if waiting:
            time.sleep(2)
    assert not waiting, f"not healthy after {timeout:.0f} s: {', '.join(waiting)} (logs in {LOG_DIR})"


def state(service: str) -> dict:
    return json.loads(podman("inspect", container(service)).stdout)[0]["State"]


def boomerang(running: Stack, *args: str) -> subprocess.CompletedProcess:
    """The `boomerang` command in the portal's container, as docs/deploy.md has operators run it."""
    return running.compose("exec", "-T", "portal", "boomerang", *args, timeout=60)


def save_logs() -> None:
    """Each container's log, its state and the processes it runs, into LOG_DIR."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for service in ("db", "migrate", *SERVICES[1:]):
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            name = container(service)
            logs = podman("logs", "--timestamps", name, timeout=30)
            (LOG_DIR / f"{service}.log").write_text(logs.stdout + logs.stderr)
            inspected = podman("inspect", "--format", "{{json .State}}", name, timeout=30)
            processes = podman("top", name, "pid", "args", timeout=30)
            (LOG_DIR / f"{service}.state").write_text(inspected.stdout + processes.stdout + processes.stderr)


def address(text: str) -> HostPort:
    host, port = text.rsplit(":", 1)
    return HostPort(host, int(port))


@pytest.fixture(scope="module")
def stack():
    ports = service_ports()
    carrier_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BOOMERANG_")}
    env.update({f"BOOMERANG_{name.upper()}": value for name, value in ports.items()})
    env.update(
        {
            # The demo data's gateway "carrier" is created from this when the database is first filled.
            "BOOMERANG_CARRIER_DEFAULT_GATEWAY": f"sip:127.0.0.1:{carrier_port}",
            "BOOMERANG_SECURITY_SECRET_KEY": secrets.token_hex(32),
            "MARIADB_PASSWORD": secrets.token_hex(12),
            "MARIADB_PORT": str(free_port()),
        }
    )
    running = Stack(env, address(ports["sip_listen"]), address(ports["portal_listen"]), carrier_port)
    try:
        up = running.compose("up", "--detach", "--no-build")
        assert up.returncode == 0, up.stdout + up.stderr
        wait_healthy(SERVICES)
        yield running
    finally:
        save_logs()
        down = running.compose("down", "--volumes", "--timeout", "10")
        assert down.returncode == 0, down.stdout + down.stderr


def api(target: HostPort, method: str, path: str, body: dict | None = None, cookie: str = "") -> tuple[int, str, str]:
    """Status, the cookie set (name=value) and the body of one request."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})}
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        return response.status, (response.getheader("Set-Cookie") or "").split(";", 1)[0], text
    finally:
        connection.close()


def callback_reaches_the_carrier(running: Stack, caller: str, workdir: Path) -> None:
    """A trigger on the demo access number: 180 then 486, then the callback INVITE at our carrier."""
    carrier = GatewaySim("gw_answer_then_bye.xml", running.carrier_port, workdir, timeout=40)
    try:
        trigger = sipp("trigger.xml", running.sip, "-s", DEMO_ACCESS, "-key", "caller", caller)
        assert trigger.returncode == 0, trigger.stdout[-2000:] + trigger.stderr
        code, messages = carrier.finish()
    finally:
        carrier.stop()
    assert code == 0, messages
    assert f"INVITE sip:{caller}@127.0.0.1:{running.carrier_port}" in messages


def test_every_service_is_up_healthy_and_not_root(stack):
    assert state("migrate")["Status"] == "exited" and state("migrate")["ExitCode"] == 0
    for service in SERVICES:
        status = podman("exec", container(service), "sh", "-c", "grep ^Uid: /proc/1/status").stdout.split()
        assert status[1] != "0", f"{service} runs as root"
    assert podman("exec", container("kamailio"), "sh", "-c", "cat /proc/1/comm").stdout.strip() == "kamailio"


def test_sip_options_are_answered(stack):
    assert sipp("options.xml", stack.sip).returncode == 0


def test_a_trigger_is_busy_and_called_back_through_the_carrier(stack, tmp_path):
    callback_reaches_the_carrier(stack, "447700900123", tmp_path)


def test_the_portal_answers_and_the_demo_customer_signs_in(stack):
    assert probes.http_get(stack.portal, "/api/health") == 200
    status, cookie, body = api(stack.portal, "POST", "/api/session", {"login": "demo", "password": "demo"})
    assert status == 201, body
    assert cookie, "no session cookie"
    status, _, body = api(stack.portal, "GET", "/api/me", cookie=cookie)
    assert status == 200, body
    assert json.loads(body)["balance"]


def test_data_survives_a_restart_of_the_database(stack, tmp_path):
    created = boomerang(stack, "account", "create", "survivor", "--currency", "USD", "--tariff", "demo")
    assert created.returncode == 0, created.stderr
    restarted = podman("restart", "--time", "20", container("db"))
    assert restarted.returncode == 0, restarted.stderr
    # Services reconnect, or exit and are started again by their restart policy.
    wait_healthy(SERVICES)
    shown = boomerang(stack, "account", "show", "survivor")
    assert shown.returncode == 0, shown.stderr
    assert "survivor" in shown.stdout
    assert boomerang(stack, "account", "show", "demo").returncode == 0
    callback_reaches_the_carrier(stack, "447700900124", tmp_path)


def test_the_documented_backup_restores(stack):
    dump = stack.compose(
        "exec", "-T", "--user", "root", "db", "mariadb-dump", "--single-transaction", "--routines", "--databases",
        "boomerang",
    )  # fmt: skip
    assert dump.returncode == 0, dump.stderr
    assert "CREATE DATABASE" in dump.stdout and "'survivor'" in dump.stdout
    assert boomerang(stack, "account", "create", "after-backup", "--currency", "USD").returncode == 0

    services = ("kamailio", "controller", "portal")
    assert stack.compose("stop", *services).returncode == 0
    restored = stack.compose("exec", "-T", "--user", "root", "db", "mariadb", stdin=dump.stdout)
    assert restored.returncode == 0, restored.stderr
    for service in services:  # one at a time, in order, as docs/deploy.md says
        assert stack.compose("start", service).returncode == 0
    wait_healthy(SERVICES)
    assert boomerang(stack, "account", "show", "survivor").returncode == 0
    assert boomerang(stack, "account", "show", "after-backup").returncode == 3  # not found: it came later


def test_a_service_that_exits_is_restarted(stack):
    before = state("portal")
    podman("exec", container("portal"), "sh", "-c", "kill -TERM 1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and state("portal").get("StartedAt") == before.get("StartedAt"):
        time.sleep(1)
    assert state("portal")["StartedAt"] != before["StartedAt"], "the portal was not restarted"
    wait_healthy(("portal",), timeout=60)
