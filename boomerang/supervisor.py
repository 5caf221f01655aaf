"""`boomerang run`: prepare the database, start every service, watch them, stop them all together.

Each service runs in its own process group (Kamailio and gunicorn fork workers), so stopping a
group leaves nothing behind; the services also get SIGTERM if the supervisor itself dies. A service
that dies is restarted, after a pause that doubles with each restart in a row (1 s up to 30 s; a
service that then runs a minute starts again from 1 s), while the others keep serving: the
controller reconnects to a restarted Kamailio or rtpengine by itself. Five restarts of one service
within five minutes are a crash loop, said so loudly in the supervisor's output at each restart.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy.exc import OperationalError

from boomerang import demo, probes, services
from boomerang.services import Endpoint, Service
from boomerang.settings import READY_FD_ENV, Settings, env_name
from boomerang.store import make_engine, migrate, session_factory, transaction

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
FIRST_RESTART_DELAY = 1.0
LONGEST_RESTART_DELAY = 30.0
STABLE_SECONDS = 60.0  # a service up this long restarts, if it dies, after the first delay again
CRASH_LOOP = (5, 300.0)  # this many restarts of one service within this many seconds
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class StartupError(Exception):
    """The platform cannot start; the message is one line naming the problem."""


class Shutdown(Exception):
    """SIGTERM, SIGHUP or SIGINT asked us to stop."""


@dataclass
class Running:
    service: Service
    process: subprocess.Popen
    ready_fd: int | None = None  # read end of the readiness pipe
    started: float = 0.0  # time.monotonic() when it was started


@dataclass
class Restarts:
    """When one service died and was restarted: the restart policy's memory of it."""

    times: list[float]
    delay: float = FIRST_RESTART_DELAY

    def next_delay(self, now: float, ran_for: float) -> float:
        """The pause before the next restart of a service that just died after `ran_for` s."""
        if ran_for >= STABLE_SECONDS:
            self.delay = FIRST_RESTART_DELAY
        delay, self.delay = self.delay, min(self.delay * 2, LONGEST_RESTART_DELAY)
        self.times = [at for at in self.times if now - at < CRASH_LOOP[1]] + [now]
        return delay

    @property
    def crash_loop(self) -> bool:
        return len(self.times) >= CRASH_LOOP[0]


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel sends SIGTERM if the supervisor dies.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def check_endpoints(settings: Settings, service_list: list[Service]) -> None:
    """Every socket the services will open must be distinct and free: fail early, naming it."""
    seen: dict[tuple[str, str, int], str] = {}
    for service in service_list:
        for endpoint in service.endpoints:
            key = (endpoint.transport, endpoint.address.host, endpoint.address.port)
            if key in seen and seen[key] != endpoint.setting:
                raise StartupError(
                    f"{endpoint.setting} and {seen[key]} both use {endpoint.transport} port "
                    f"{endpoint.address.port} on {endpoint.address.host}: give each its own port"
                )
            seen[key] = endpoint.setting
            _check_free(endpoint)


def _check_free(endpoint: Endpoint) -> None:
    kind = socket.SOCK_DGRAM if endpoint.transport == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in endpoint.address.host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: ignore TIME_WAIT
        try:
            sock.bind((endpoint.address.host, endpoint.address.port))
        except OSError as exc:
            section, key = endpoint.setting.split(".")
            if exc.errno == errno.EADDRINUSE:
                problem = "is already in use"
            elif exc.errno == errno.EADDRNOTAVAIL:
                problem = "is not an address of this machine"
            else:
                problem = f"cannot be used ({exc.strerror})"
            raise StartupError(
                f"{endpoint.transport} port {endpoint.address.port} on {endpoint.address.host} {problem} "
                f"({endpoint.setting}): free it or set {env_name(section, key)}"
            ) from None


def prepare_database(settings: Settings, out: TextIO) -> None:
    """Migrate to the current schema; load the demo data into an empty database."""
    try:
        migrate.upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            with transaction(session_factory(engine)) as session:
                if demo.is_empty(session):
                    demo.load(session, settings)
                    print("database: empty, demo data loaded (demo-only logins: demo/demo, admin/admin)", file=out)
        finally:
            engine.dispose()
    except OperationalError as exc:
        raise StartupError(f"cannot use the database (database.url): {exc.orig}") from None


class Supervisor:
    def __init__(self, settings: Settings, out: TextIO = sys.stdout):
        self.settings = settings
        self.out = out
        self.running: list[Running] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, wait for a stop signal or a service failure, stop everything."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
        # Workers whose parent exits first are re-parented to us, so we can reap them.
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        try:
            service_list = services.all_services(self.settings)
            check_endpoints(self.settings, service_list)
            self.prepare_directories()
            prepare_database(self.settings, self.out)
            for service in service_list:
                self.start(service)
            print(f"all services up; logs in {services.log_dir(self.settings)}; Ctrl-C stops them", file=self.out)
            self.out.flush()
            return self._watch()
        except Shutdown:
            return 0
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def prepare_directories(self) -> None:
        services.prepare_directories(self.settings)

    def _on_signal(self, signum, frame) -> None:
        raise Shutdown(signal.Signals(signum).name)

    def _watch(self) -> int:
        """Restart each service that dies; runs until a stop signal."""
        restarts: dict[str, Restarts] = {}
        while True:
            for index, item in enumerate(list(self.running)):
                code = item.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                history = restarts.setdefault(item.service.name, Restarts([]))
                delay = history.next_delay(now, now - item.started)
                loop = " CRASH LOOP:" if history.crash_loop else ""
                print(
                    f"{item.service.name} stopped unexpectedly (exit code {code});{loop} restart "
                    f"{len(history.times)} within {CRASH_LOOP[1] / 60:.0f} min, in {delay:.0f} s. "
                    f"See {self._log_path(item.service)}",
                    file=sys.stderr,
                    flush=True,
                )
                self._stop(item)  # its workers too: they hold its ports
                self.running.remove(item)
                time.sleep(delay)
                try:
                    self.start(item.service, position=index)
                except StartupError as failed:  # tried again, after a longer pause, at the next turn
                    print(f"{item.service.name} did not restart: {failed}", file=sys.stderr, flush=True)
                    self._forget_start(item.service, index)
                else:
                    self._count_restart(item.service.name)
            time.sleep(0.5)

    def _count_restart(self, name: str) -> None:
        """The restart in the platform's metrics, `boomerang_service_restarts_total{service}`, which
        Kamailio serves (a crash loop shows as its rate); lost if Kamailio itself is not up."""
        command = ["kamcmd", "-s", services.kamailio_ctl_socket(self.settings),
                   "xhttp_prom.counter_inc", "boomerang_service_restarts_total", "1", name]  # fmt: skip
        try:
            subprocess.run(command, capture_output=True, timeout=2, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"the restart of {name} could not be counted: {exc}", file=sys.stderr, flush=True)

    def _forget_start(self, service: Service, index: int) -> None:
        """A start that failed leaves, in its place, a service that has exited."""
        if index < len(self.running) and self.running[index].service is service:
            self._stop(self.running.pop(index))
        self.running.insert(index, Running(service, _Exited(), started=time.monotonic()))

    @staticmethod
    def _stop(item: Running) -> None:
        if not isinstance(item.process, _Exited):
            stop_group(item.process)
        if item.ready_fd is not None:
            os.close(item.ready_fd)
            item.ready_fd = None

    # --- one service -----------------------------------------------------------------------------

    def _log_path(self, service: Service):
        return services.log_dir(self.settings) / f"{service.name}.log"

    def start(self, service: Service, position: int | None = None) -> None:
        """Start one service and wait until it answers on its own protocol; `position`: where it
        stands in the start order (a restart takes its old place, so stopping keeps the order)."""
        env = services.child_environment({**self.settings.environment(), **service.env})
        pass_fds: tuple[int, ...] = ()
        ready_read = None
        if service.uses_ready_pipe:
            ready_read, ready_write = os.pipe()
            env[READY_FD_ENV] = str(ready_write)
            pass_fds = (ready_write,)
        with open(self._log_path(service), "ab") as log:
            try:
                process = subprocess.Popen(
                    service.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=pass_fds,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except FileNotFoundError:
                raise StartupError(
                    f"{service.argv[0]} is not installed (needed for {service.name}): `make run` installs it"
                ) from None
            finally:
                for fd in pass_fds:
                    os.close(fd)
        item = Running(service, process, ready_read, time.monotonic())
        self.running.insert(len(self.running) if position is None else position, item)
        self._wait_ready(item)
        print(f"{service.name:<11} pid {process.pid:<7} {service.description}", file=self.out)
        self.out.flush()

    def _wait_ready(self, item: Running) -> None:
        check = self._readiness_check(item)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if item.process.poll() is not None:
                raise StartupError(
                    f"{item.service.name} exited during start-up (code {item.process.returncode}); "
                    f"see {self._log_path(item.service)}"
                )
            if check():
                return
            time.sleep(0.1)
        raise StartupError(
            f"{item.service.name} did not become ready within {START_TIMEOUT:.0f} s; see {self._log_path(item.service)}"
        )

    def _readiness_check(self, item: Running) -> Callable[[], bool]:
        settings = self.settings
        name = item.service.name
        if item.ready_fd is not None:
            os.set_blocking(item.ready_fd, False)
            return lambda: _read_ready(item.ready_fd)
        if name == "media_store":
            return lambda: probes.redis_ping(settings.rtpengine_redis_listen, timeout=0.3)
        if name == "rtpengine":
            return lambda: probes.rtpengine_ping(settings.rtpengine_ng_listen, timeout=0.3)
        if name == "kamailio":
            return lambda: probes.sip_options(settings.sip_listen, timeout=0.3) == 200
        if name == "portal":
            return lambda: probes.http_get(settings.portal_listen, "/api/health", timeout=0.5) == 200
        raise ValueError(f"no readiness check for {name}")

    # --- stopping --------------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop in reverse start order: the portal and controller before the SIP and media engines."""
        for item in reversed(self.running):
            self._stop(item)
        if self.running:
            print("all services stopped", file=self.out)
        self.running.clear()


class _Exited:
    """A service that could not be restarted, as a process that has exited: tried again later."""

    pid = 0
    returncode = 1

    def poll(self) -> int:
        return 1

    def wait(self, timeout: float | None = None) -> int:
        return 1


def _read_ready(fd: int) -> bool:
    try:
        return b"ready" in os.read(fd, 64)
    except BlockingIOError:
        return False


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the service's whole process group, then SIGKILL what is left after the timeout."""
    group = process.pid  # start_new_session made the service its group's leader
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    # Workers of the group may outlive their leader for a moment; wait for them, then insist.
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _group_alive(group):
        time.sleep(0.05)
    if _group_alive(group):
        os.killpg(group, signal.SIGKILL)
    process.wait()


def _group_alive(group: int) -> bool:
    try:
        while os.waitpid(-group, os.WNOHANG)[0] > 0:
            pass  # reap the group's exited workers (re-parented to us), or they would linger as zombies
    except ChildProcessError:
        pass
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
