"""Container entry point: one platform service per container, started as `boomerang run` starts it.

    entrypoint.py rtpengine|kamailio|controller|portal   run that service in the foreground (it
                                                         replaces this process; logs go to stderr)
    entrypoint.py migrate                                migrate the database to the current schema and
                                                         load the demo data into an empty one, then exit
    entrypoint.py health [ROLE]                          exit 0 when the service answers on its own
                                                         protocol (the container's health check)
    entrypoint.py COMMAND [ARG...]                       run any other command, e.g. boomerang account list

The services' command lines come from boomerang/services.py, as for `boomerang run`, so a setting
reaches each program the same way in a container and on a plain host. Kamailio, the controller and
the portal wait (bounded) until the database holds the current schema, so the containers may start in
any order; the migrate container is the one that changes the schema.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sqlalchemy.exc import OperationalError

from boomerang import probes, services
from boomerang.settings import Settings, SettingsError, load
from boomerang.store import make_engine, migrate
from boomerang.supervisor import StartupError, prepare_database

ROLES = {
    "media_store": services.media_store,
    "rtpengine": services.rtpengine,
    "kamailio": services.kamailio,
    "controller": services.controller,
    "portal": services.portal,
}
NEEDS_SCHEMA = {"kamailio", "controller", "portal"}
DATABASE_WAIT = 300.0  # seconds; then exit, and the restart policy tries again


def _say(text: str) -> None:
    print(f"boomerang: {text}", file=sys.stderr, flush=True)


def _role_file(settings: Settings) -> Path:
    return services.runtime_dir(settings) / "role"


def _database_state(settings: Settings) -> str | None:
    """The schema revision the database holds ("" for none yet), or None when it does not answer."""
    engine = make_engine(settings.database_url)
    try:
        return migrate.current_revision(engine) or ""
    except OperationalError:
        return None
    finally:
        engine.dispose()


def wait_for_database(settings: Settings, want_schema: bool, timeout: float = DATABASE_WAIT) -> bool:
    """Wait until the database answers (and, with want_schema, holds the current schema)."""
    head = migrate.head_revision()
    deadline = time.monotonic() + timeout
    reported = None
    while True:
        state = _database_state(settings)
        if state is not None and (not want_schema or state == head):
            return True
        why = "does not answer" if state is None else f"has schema {state or 'none'}, waiting for {head}"
        if why != reported:
            _say(f"database (database.url) {why}")
            reported = why
        if time.monotonic() >= deadline:
            return False
        time.sleep(2)


def run_service(role: str, settings: Settings) -> int:
    service = ROLES[role](settings)
    services.prepare_directories(settings)
    _role_file(settings).write_text(role + "\n")
    if role in NEEDS_SCHEMA and not wait_for_database(settings, want_schema=True):
        _say(f"the database did not get the current schema within {DATABASE_WAIT:.0f} s: is the migrate job done?")
        return 5
    _say(f"{role}: {service.description}")
    env = services.child_environment({**settings.environment(), **service.env})
    os.execvpe(service.argv[0], service.argv, env)
    return 1  # not reached


def run_migrate(settings: Settings) -> int:
    services.prepare_directories(settings)
    if not wait_for_database(settings, want_schema=False):
        _say(f"the database did not answer within {DATABASE_WAIT:.0f} s")
        return 5
    try:
        prepare_database(settings, sys.stdout)
    except StartupError as exc:
        _say(str(exc))
        return 5
    _say(f"database at schema {migrate.head_revision()}")
    return 0


def _socket_inodes() -> set[str]:
    """Inodes of the sockets the processes of this container hold."""
    inodes = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def _connected_to(port: int, inodes: set[str]) -> bool:
    """One of our sockets has an established TCP connection to `port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                return True
    return False


def healthy(role: str, settings: Settings) -> bool:
    if role == "media_store":
        return probes.redis_ping(settings.rtpengine_redis_listen, timeout=2)
    if role == "rtpengine":
        return probes.rtpengine_ping(settings.rtpengine_ng_listen, timeout=2)
    if role == "kamailio":
        return probes.sip_options(settings.sip_listen, timeout=2) == 200
    if role == "portal":
        return probes.http_get(settings.portal_listen, "/api/health", timeout=3) == 200
    if role == "controller":
        # Up means linked: to Kamailio's evapi and to rtpengine's TCP ng port.
        inodes = _socket_inodes()
        return all(
            _connected_to(address.port, inodes)
            for address in (settings.controller_evapi_listen, settings.rtpengine_ng_tcp_listen)
        )
    if role == "migrate":
        return True
    raise ValueError(role)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in (*ROLES, "migrate", "health"):
        try:
            os.execvp(command, argv)
        except FileNotFoundError:
            _say(f"{command}: no such role or command (roles: {', '.join(ROLES)}, migrate, health)")
            return 2
    try:
        settings = load()
    except SettingsError as exc:
        _say(f"error: {exc}")
        return 5
    if command == "health":
        try:
            role = rest[0] if rest else _role_file(settings).read_text().strip()
        except OSError:
            return 1  # the service has not started yet
        return 0 if healthy(role, settings) else 1
    if command == "migrate":
        return run_migrate(settings)
    return run_service(command, settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
