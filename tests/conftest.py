"""Shared fixtures: settings for a throw-away platform, real SQLite and MariaDB databases."""

from __future__ import annotations

import io
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from sqlalchemy.engine import make_url

from boomerang.cli.context import CommandContext
from boomerang.cli.main import main as cli_main
from boomerang.settings import Settings, load
from boomerang.store import make_engine, migrate, session_factory

# The MariaDB server the tests create their databases on (`make test` makes sure it runs).
MARIADB_SERVER_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
TEST_SECRET = "test-secret-" + "0" * 40


def mariadb_database() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test; dropped afterwards."""
    server = make_url(MARIADB_SERVER_URL)
    name = f"boomerang_t_{uuid.uuid4().hex[:12]}"
    connect = dict(host=server.host, port=server.port or 3306, user=server.username, password=server.password or "")
    try:
        admin = pymysql.connect(**connect)
    except pymysql.err.OperationalError as exc:
        pytest.fail(f"MariaDB is not reachable at {server.host}:{server.port} ({exc}); `make test` starts it")
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        # PyMySQL would build a TLS context for every connection although the test server has no TLS.
        url = server.set(database=name).update_query_dict({"ssl_disabled": "true"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database_url(request, tmp_path) -> Iterator[str]:
    """An empty database of each supported kind, in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'boomerang.db'}"
    else:
        yield from mariadb_database()


def make_settings(tmp_path: Path, database_url: str, **overrides: str) -> Settings:
    environ = {
        "BOOMERANG_DATABASE_URL": database_url,
        "BOOMERANG_PATHS_VAR_DIR": str(tmp_path / "var"),
        "BOOMERANG_SECURITY_SECRET_KEY": TEST_SECRET,
    }
    environ.update({f"BOOMERANG_{name.upper()}": value for name, value in overrides.items()})
    return load(environ)


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def migrated(settings) -> Settings:
    """Settings whose database has the current schema."""
    migrate.upgrade(settings.database_url)
    return settings


@pytest.fixture
def db(migrated):
    """A session factory on the migrated database."""
    engine = make_engine(migrated.database_url)
    yield session_factory(engine)
    engine.dispose()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(migrated, capsys):
    """Run `boomerang ARGS...` in-process against the test database; `stdin` feeds secrets and files."""

    def run(*args: str, stdin: str = "") -> CliResult:
        out = io.StringIO()
        context = CommandContext(migrated, out=out, stdin=io.StringIO(stdin))
        try:
            code = cli_main(list(args), context)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        finally:
            context.engine.dispose()
        captured = capsys.readouterr()
        return CliResult(code, out.getvalue() + captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
