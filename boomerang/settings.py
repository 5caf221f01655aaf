"""Platform settings: etc/boomerang.toml, an optional override file, then environment variables.

The defaults exist in one place only, etc/boomerang.toml. Everything else (Kamailio's
configuration, the services started by `boomerang run`, the tests) derives its values from the
`Settings` object built here, so no setting is ever written twice.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from boomerang.numbers import PrefixList, service_number

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = PROJECT_ROOT / "etc" / "boomerang.toml"
ENV_PREFIX = "BOOMERANG_"
CONFIG_ENV = "BOOMERANG_CONFIG"
# Set by `boomerang run` for the services it starts: a pipe to report readiness on.
READY_FD_ENV = "BOOMERANG_READY_FD"


class SettingsError(ValueError):
    """A setting is missing, unknown or invalid; the message names it and where it came from."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    database_url: str
    sip_listen: HostPort
    sip_workers: int
    sip_max_leg_seconds: int
    metrics_listen: HostPort
    triggers_repeat_window_seconds: int
    triggers_per_caller_per_hour: int
    triggers_per_second: int
    rtpengine_ng_listen: HostPort
    rtpengine_ng_tcp_listen: HostPort
    rtpengine_media_address: str
    rtpengine_port_min: int
    rtpengine_port_max: int
    rtpengine_silence_timeout_seconds: int
    rtpengine_redis_listen: HostPort
    controller_evapi_listen: HostPort
    portal_listen: HostPort
    portal_workers: int
    portal_secure_cookies: bool
    carrier_default_gateway: str
    numbers_access_number: str
    numbers_sms_number: str
    numbers_blocked_prefixes: PrefixList
    security_secret_key: str
    security_secret_key_file: Path | None
    paths_var_dir: Path
    log_level: str

    def environment(self) -> dict[str, str]:
        """These settings as BOOMERANG_* variables: what a child process needs to load the same."""
        rendered = {}
        for section, key in PARSERS:
            value = getattr(self, f"{section}_{key}")
            rendered[env_name(section, key)] = "" if value is None else str(value)
        return rendered

    def secret_key(self) -> bytes:
        """The deployment's secret: configured, or generated once into secret_key_file."""
        if self.security_secret_key:
            return self.security_secret_key.encode()
        path = self.security_secret_key_file or self.paths_var_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: when two processes start at once, one writes and the other reads its key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32) + "\n")
        key = path.read_text().strip()
        if len(key) < 32:
            raise SettingsError(f"security.secret_key_file = {str(path)!r}: holds fewer than 32 characters")
        return key.encode()


# --- validators: each turns the raw value into its typed form or raises ValueError -------------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _nonempty(value: Any) -> str:
    if not _text(value).strip():
        raise ValueError("must not be empty")
    return value


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("expected an integer") from None
        if not isinstance(value, int):
            raise ValueError("expected an integer")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in {"true", "yes", "1"}:
        return True
    if text in {"false", "no", "0"}:
        return False
    raise ValueError("expected true or false")


def _ip_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(_text(value).strip()))
    except ValueError:
        raise ValueError("expected an IP address") from None


def _host_port(value: Any) -> HostPort:
    host, sep, port = _text(value).strip().rpartition(":")
    if not sep or not host:
        raise ValueError("expected host:port")
    return HostPort(_ip_address(host.strip("[]")), _integer(1, 65535)(port))


def _sip_uri(value: Any) -> str:
    uri = _text(value).strip()
    if not uri.startswith(("sip:", "sips:")) or len(uri.split(":", 1)[1]) == 0:
        raise ValueError("expected a SIP URI such as sip:192.0.2.10:5060")
    return uri


def _database_url(value: Any) -> str:
    url = _nonempty(value).strip()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url[len("sqlite:///") :]
        if relative and relative != ":memory:":
            url = "sqlite:///" + str(PROJECT_ROOT / relative)
    elif not url.startswith(("sqlite:", "mysql+pymysql://", "mariadb+pymysql://")):
        raise ValueError("expected sqlite:///path or mysql+pymysql://user:password@host:port/database")
    try:
        make_url(url)  # as the engine will: a bad port or a garbled URL is reported here, not later
    except (ArgumentError, ValueError):
        raise ValueError("not a valid URL (e.g. a port that is not a number)") from None
    return url


def _without_password(value: Any) -> Any:
    """A database URL as it may be shown in an error: the password replaced by ***."""
    if not isinstance(value, str):
        return value
    scheme, sep, rest = value.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return value
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def _path(value: Any) -> Path:
    path = Path(_nonempty(value).strip())
    return path if path.is_absolute() else PROJECT_ROOT / path


def _log_level(value: Any) -> str:
    level = _text(value).strip().lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ValueError("expected debug, info, warning or error")
    return level


PARSERS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("database", "url"): _database_url,
    ("sip", "listen"): _host_port,
    ("sip", "workers"): _integer(1, 64),
    ("sip", "max_leg_seconds"): _integer(10, 86400),
    ("metrics", "listen"): _host_port,
    ("triggers", "repeat_window_seconds"): _integer(0, 86400),
    ("triggers", "per_caller_per_hour"): _integer(1, 3600),
    ("triggers", "per_second"): _integer(1, 100000),
    ("rtpengine", "ng_listen"): _host_port,
    ("rtpengine", "ng_tcp_listen"): _host_port,
    ("rtpengine", "media_address"): _ip_address,
    ("rtpengine", "port_min"): _integer(1024, 65535),
    ("rtpengine", "port_max"): _integer(1024, 65535),
    ("rtpengine", "silence_timeout_seconds"): _integer(10, 3600),
    ("rtpengine", "redis_listen"): _host_port,
    ("controller", "evapi_listen"): _host_port,
    ("portal", "listen"): _host_port,
    ("portal", "workers"): _integer(1, 64),
    ("portal", "secure_cookies"): _boolean,
    ("carrier", "default_gateway"): _sip_uri,
    ("numbers", "access_number"): lambda value: service_number(_text(value)),
    ("numbers", "sms_number"): lambda value: service_number(_text(value)),
    ("numbers", "blocked_prefixes"): lambda value: PrefixList.parse(_text(value)),
    ("security", "secret_key"): _text,
    ("security", "secret_key_file"): lambda value: _path(value) if _text(value).strip() else None,
    ("paths", "var_dir"): _path,
    ("log", "level"): _log_level,
}


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None


def _overlay(raw: dict[tuple[str, str], tuple[Any, str]], data: Mapping[str, Any], origin: str) -> None:
    for section, table in data.items():
        if not isinstance(table, dict):
            raise SettingsError(f"{origin}: [{section}] must be a table of settings")
        for key, value in table.items():
            if (section, key) not in PARSERS:
                raise SettingsError(f"{origin}: unknown setting {section}.{key}")
            raw[(section, key)] = (value, origin)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings, raising SettingsError with a one-line message on the first bad value."""
    environ = os.environ if environ is None else environ
    raw: dict[tuple[str, str], tuple[Any, str]] = {}
    _overlay(raw, _read_toml(DEFAULTS_FILE), str(DEFAULTS_FILE))
    override = environ.get(CONFIG_ENV)
    if override:
        _overlay(raw, _read_toml(Path(override)), override)

    known_env = {env_name(section, key): (section, key) for section, key in PARSERS}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in (CONFIG_ENV, READY_FD_ENV):
            continue
        if name not in known_env:
            raise SettingsError(f"unknown setting in environment variable {name}")
        raw[known_env[name]] = (value, f"environment variable {name}")

    values: dict[str, Any] = {}
    for (section, key), parse in PARSERS.items():
        if (section, key) not in raw:
            raise SettingsError(f"setting {section}.{key} is missing from {DEFAULTS_FILE}")
        value, origin = raw[(section, key)]
        try:
            values[f"{section}_{key}"] = parse(value)
        except ValueError as exc:
            shown = _without_password(value) if (section, key) == ("database", "url") else value
            raise SettingsError(f"{section}.{key} = {shown!r} (from {origin}): {exc}") from None

    settings = Settings(**values)
    if settings.rtpengine_port_min + 3 > settings.rtpengine_port_max:
        raise SettingsError(
            f"rtpengine.port_min = {settings.rtpengine_port_min} and rtpengine.port_max = "
            f"{settings.rtpengine_port_max}: the range must hold at least 4 ports"
        )
    return settings
