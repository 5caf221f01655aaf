"""The platform's processes and how each is started from the settings.

`boomerang run` starts them in this order; tests and container images use the same definitions,
so a setting reaches every program through one path.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from boomerang.settings import PROJECT_ROOT, HostPort, Settings

KAMAILIO_CFG = PROJECT_ROOT / "kamailio" / "kamailio.cfg"
KEMI_SCRIPT = PROJECT_ROOT / "kemi" / "routing.py"
RTPENGINE_REDIS_DATABASE = 1
REDIS_LOG_LEVELS = {"debug": "debug", "info": "notice", "warning": "warning", "error": "warning"}
KAMAILIO_LOG_LEVELS = {"debug": 3, "info": 2, "warning": 1, "error": -1}


@dataclass(frozen=True)
class Endpoint:
    """A socket a service listens on, named by the setting that chose it."""

    setting: str
    transport: str  # "udp" or "tcp"
    address: HostPort


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    endpoints: list[Endpoint]
    description: str
    env: dict[str, str] = field(default_factory=dict)
    uses_ready_pipe: bool = False  # the program writes "ready" to fd $BOOMERANG_READY_FD


def runtime_dir(settings: Settings) -> Path:
    return settings.paths_var_dir / "run"


def kamailio_ctl_socket(settings: Settings) -> str:
    """Kamailio's management RPC (kamcmd -s), on a socket under the runtime directory."""
    return f"unix:{runtime_dir(settings) / 'kamailio-ctl'}"


def log_dir(settings: Settings) -> Path:
    return settings.paths_var_dir / "log"


def _python_env() -> dict[str, str]:
    """Lets Kamailio's embedded interpreter find this virtualenv's packages."""
    return {"VIRTUAL_ENV": sys.prefix} if sys.prefix != sys.base_prefix else {}


def media_store_dir(settings: Settings) -> Path:
    return settings.paths_var_dir / "media-store"


def prepare_directories(settings: Settings) -> None:
    """The directories the services write to, made before any of them starts."""
    for path in (runtime_dir(settings), log_dir(settings), media_store_dir(settings)):
        path.mkdir(parents=True, exist_ok=True)


def media_store(settings: Settings) -> Service:
    """The Redis in which rtpengine keeps each call's media state as it changes: an rtpengine that
    restarts reads the calls back and carries their media on, on the same ports. Its own data is
    appended to a file, so a restart of this Redis forgets nothing either."""
    redis = settings.rtpengine_redis_listen
    return Service(
        name="media_store",
        argv=[
            "redis-server",
            "--bind",
            redis.host,
            "--port",
            str(redis.port),
            "--dir",
            str(media_store_dir(settings)),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--loglevel",
            {"debug": "debug", "info": "notice", "warning": "warning", "error": "warning"}[settings.log_level],
        ],  # fmt: skip
        endpoints=[Endpoint("rtpengine.redis_listen", "tcp", redis)],
        description=f"rtpengine's calls kept in Redis on {redis}",
    )


def rtpengine(settings: Settings) -> Service:
    ng, ng_tcp = settings.rtpengine_ng_listen, settings.rtpengine_ng_tcp_listen
    redis = f"{settings.rtpengine_redis_listen}/{RTPENGINE_REDIS_DATABASE}"
    return Service(
        name="rtpengine",
        argv=[
            "rtpengine",
            "--config-file=none",  # ignore Debian's /etc/rtpengine/rtpengine.conf
            "--table=-1",  # userspace forwarding: no kernel module needed
            f"--interface={settings.rtpengine_media_address}",
            f"--listen-ng={ng}",
            f"--listen-tcp-ng={ng_tcp}",
            "--dtmf-log-ng-tcp",  # DTMF events to the controller's TCP ng connection
            f"--port-min={settings.rtpengine_port_min}",
            f"--port-max={settings.rtpengine_port_max}",
            f"--timeout={settings.rtpengine_silence_timeout_seconds}",
            # Calls kept in Redis as they change, read back at start; without Redis it starts all
            # the same (new calls work, only a restart would lose them).
            f"--redis={redis}",
            f"--redis-write={redis}",
            "--no-redis-required",
            f"--pidfile={runtime_dir(settings) / 'rtpengine.pid'}",
            "--foreground",
            "--log-stderr",
            f"--log-level={ {'debug': 7, 'info': 5, 'warning': 4, 'error': 3}[settings.log_level] }",
        ],
        endpoints=[
            Endpoint("rtpengine.ng_listen", "udp", ng),
            Endpoint("rtpengine.ng_tcp_listen", "tcp", ng_tcp),
        ],
        description=f"media on {settings.rtpengine_media_address} ports "
        f"{settings.rtpengine_port_min}-{settings.rtpengine_port_max}, ng control udp {ng} and tcp {ng_tcp}",
    )


def kamailio_defines(settings: Settings) -> dict[str, str]:
    """The preprocessor defines kamailio/kamailio.cfg expects; strings keep their quotes."""
    return {
        "SIP_LISTEN_UDP": f"udp:{settings.sip_listen}",
        "SIP_LISTEN_TCP": f"tcp:{settings.sip_listen}",
        "SIP_WORKERS": str(settings.sip_workers),
        "METRICS_LISTEN": f"tcp:{settings.metrics_listen}",
        "LOG_LEVEL": str(KAMAILIO_LOG_LEVELS[settings.log_level]),
        "KEMI_SCRIPT": f'"{KEMI_SCRIPT}"',
        "EVAPI_BIND": f'"{settings.controller_evapi_listen}"',
        "CTL_SOCKET": f'"{kamailio_ctl_socket(settings)}"',
    }


def kamailio(settings: Settings) -> Service:
    argv = ["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-Y", str(runtime_dir(settings))]
    for name, value in kamailio_defines(settings).items():
        argv += ["-A", f"{name}={value}"]
    return Service(
        name="kamailio",
        argv=argv,
        endpoints=[
            Endpoint("sip.listen", "udp", settings.sip_listen),
            Endpoint("sip.listen", "tcp", settings.sip_listen),
            Endpoint("controller.evapi_listen", "tcp", settings.controller_evapi_listen),
            Endpoint("metrics.listen", "tcp", settings.metrics_listen),
        ],
        description=f"SIP on udp/tcp {settings.sip_listen}, controller channel (evapi) on "
        f"{settings.controller_evapi_listen}, metrics on http://{settings.metrics_listen}/metrics",
        env=_python_env(),
    )


def controller(settings: Settings) -> Service:
    return Service(
        name="controller",
        argv=[sys.executable, "-m", "callback"],
        endpoints=[],
        description=f"call controller, connected to Kamailio at {settings.controller_evapi_listen} and "
        f"rtpengine at {settings.rtpengine_ng_tcp_listen}",
        uses_ready_pipe=True,
    )


def portal(settings: Settings) -> Service:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    return Service(
        name="portal",
        argv=[
            gunicorn,
            f"--bind={settings.portal_listen}",
            f"--workers={settings.portal_workers}",
            # Threads: a browser following a call live holds a request open (Server-Sent Events).
            "--worker-class=gthread",
            "--threads=16",
            "--access-logfile=-",
            f"--log-level={settings.log_level}",
            "--graceful-timeout=5",
            "portal.wsgi:app",
        ],
        endpoints=[Endpoint("portal.listen", "tcp", settings.portal_listen)],
        description=f"portal and API on http://{settings.portal_listen}/",
    )


def all_services(settings: Settings) -> list[Service]:
    return [media_store(settings), rtpengine(settings), kamailio(settings), controller(settings), portal(settings)]


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
