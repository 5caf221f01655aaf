"""`boomerang db upgrade|downgrade|current|demo`, databases that are not usable, and the real executable.

Exit codes (boomerang/cli/main.py): 0 done, 2 invalid input or usage, 3 not found, 4 conflict,
5 configuration or database not usable.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, inspect, select
from sqlalchemy.engine import make_url

from boomerang import security
from boomerang.cli.context import CommandContext
from boomerang.cli.main import main
from boomerang.store import make_engine, migrate
from boomerang.store.models import Account
from tests.clikit import failed, ok, table

HEAD = migrate.head_revision()
NOT_MIGRATED = f"the database schema is at nothing, not {HEAD}: run `boomerang db upgrade`"
BOOMERANG = Path(sys.executable).parent / "boomerang"
SECRET = "subprocess-secret-" + "7" * 32


def in_process(settings, capsys):
    """Like the `cli` fixture, on whatever database `settings` names (migrated or not)."""

    def run(*args: str, stdin: str = ""):
        out = io.StringIO()
        context = CommandContext(settings, out=out, stdin=io.StringIO(stdin))
        try:
            code = main(list(args), context)
        except SystemExit as exc:
            code = exc.code
        finally:
            context.engine.dispose()
        captured = capsys.readouterr()
        return SimpleNamespace(code=code, out=out.getvalue() + captured.out, err=captured.err)

    return run


def table_names(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


# --- db upgrade / downgrade / current ----------------------------------------------------------------


def test_current_upgrade_and_downgrade(cli):
    assert ok(cli("db", "current")) == f"{HEAD} (current)\n"
    assert ok(cli("db", "upgrade")) == f"schema at {HEAD}\n"  # already there: nothing to do
    ok(cli("account", "create", "alice", "--currency", "USD"))
    assert [row["login"] for row in table(ok(cli("account", "list")))] == ["alice"]

    assert ok(cli("db", "downgrade", "base")) == "schema at base\n"

    assert ok(cli("db", "current")) == f"base (behind {HEAD})\n"
    failed(cli("account", "list"), 5, NOT_MIGRATED)
    assert ok(cli("db", "upgrade")) == f"schema at {HEAD}\n"
    assert ok(cli("db", "current")) == f"{HEAD} (current)\n"
    assert table(ok(cli("account", "list"))) == []  # downgrading to base removed the data with the schema


def test_downgrade_to_a_revision_that_is_not_there(cli):
    ok(cli("account", "create", "alice", "--currency", "USD"))

    failed(cli("db", "downgrade", "nonsense"), 2, "cannot downgrade to 'nonsense'", "nonsense")
    usage = cli("db", "downgrade")
    assert usage.code == 2 and "revision" in usage.err

    assert ok(cli("db", "current")) == f"{HEAD} (current)\n"
    assert [row["login"] for row in table(ok(cli("account", "list")))] == ["alice"]
    ok(cli("db", "downgrade", "base"))
    failed(cli("db", "downgrade", HEAD), 2, f"cannot downgrade to '{HEAD}'")  # it is above base
    assert ok(cli("db", "current")) == f"base (behind {HEAD})\n"


# --- db demo -----------------------------------------------------------------------------------------


def test_demo_loads_into_an_empty_database_once(cli, db, migrated):
    out = ok(cli("db", "demo"))

    assert out == "demo data loaded: customer demo (password demo, PIN 4321), admin admin (password admin)\n"
    demo = dict(line.split("\t", 1) for line in ok(cli("account", "show", "demo")).splitlines())
    assert (demo["role"], demo["currency"], demo["tariff"], demo["balance"]) == ("customer", "USD", "demo", "10.000000")
    assert (demo["pin"], demo["password"]) == ("set", "set")
    assert [(r["login"], r["role"]) for r in table(ok(cli("account", "list")))] == [
        ("admin", "admin"),
        ("demo", "customer"),
    ]
    assert ok(cli("tariff", "export", "demo")).splitlines()[1:] == [
        "1,United States and Canada,0.05,0,30,6,0,0,up,4,",
        "44,United Kingdom,0.1,0,60,60,0,0,up,4,",
    ]
    (number,) = table(ok(cli("access-number", "list")))
    assert (number["number"], number["label"]) == (migrated.numbers_access_number, "Demo access number")
    (gateway,) = table(ok(cli("gateway", "list")))
    assert (gateway["name"], gateway["uri"]) == ("carrier", migrated.carrier_default_gateway)
    assert gateway["trusted_source"] == "127.0.0.1/32"
    with db() as session:
        accounts = {a.login: a for a in session.execute(select(Account)).scalars()}
    assert accounts["demo"].pin_digest == security.pin_digest(migrated.secret_key(), "4321")
    assert security.verify_password(accounts["demo"].password_hash, "demo")
    assert security.verify_password(accounts["admin"].password_hash, "admin")
    assert accounts["admin"].pin_digest is None

    failed(cli("db", "demo"), 4, "the database already holds accounts")

    assert [row["reference"] for row in table(ok(cli("ledger", "list", "demo")))] == ["demo:initial-credit"]
    assert len(table(ok(cli("gateway", "list")))) == 1


def test_demo_refuses_a_database_that_holds_accounts(cli):
    ok(cli("account", "create", "alice", "--currency", "EUR"))

    failed(cli("db", "demo"), 4, "demo data goes into an empty database only")

    assert [row["login"] for row in table(ok(cli("account", "list")))] == ["alice"]
    assert table(ok(cli("tariff", "list"))) == []
    assert table(ok(cli("gateway", "list"))) == []
    assert table(ok(cli("access-number", "list"))) == []


# --- databases that cannot be used ------------------------------------------------------------------


def test_commands_refuse_a_database_without_the_schema(settings, capsys):
    run = in_process(settings, capsys)

    for arguments, stdin in [
        (["account", "list"], ""),
        (["account", "create", "alice", "--currency", "USD"], ""),
        (["account", "set-pin", "alice"], "4321\n"),
        (["account", "topup", "alice", "10"], ""),
        (["callerid", "add", "alice", "+447700900123"], ""),
        (["tariff", "import", "retail", "-"], "prefix,destination,price_per_minute\n44,UK,0.1\n"),
        (["gateway", "add", "carrier", "sip:192.0.2.10"], ""),
        (["access-number", "list"], ""),
        (["cdr", "list"], ""),
        (["ledger", "list", "alice"], ""),
        (["db", "demo"], ""),
    ]:
        failed(run(*arguments, stdin=stdin), 5, NOT_MIGRATED)
    assert table_names(settings.database_url) == []  # nothing was created on the way

    assert ok(run("db", "current")) == f"base (behind {HEAD})\n"
    assert ok(run("db", "upgrade")) == f"schema at {HEAD}\n"
    ok(run("account", "create", "alice", "--currency", "USD"))
    assert [row["login"] for row in table(ok(run("account", "list")))] == ["alice"]


def test_commands_refuse_a_database_that_cannot_be_reached(settings, tmp_path, capsys):
    if settings.database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'directory' / 'boomerang.db'}"
    else:  # nothing listens on port 1
        url = make_url(settings.database_url).set(port=1).render_as_string(hide_password=False)
    run = in_process(dataclasses.replace(settings, database_url=url), capsys)

    failed(run("db", "upgrade"), 5, "cannot migrate the database: ")
    failed(run("db", "downgrade", "base"), 5, "cannot migrate the database: ")
    failed(run("db", "current"), 5, "cannot use the database: ")
    failed(run("account", "list"), 5, "cannot use the database: ")
    failed(run("account", "create", "alice", "--currency", "USD"), 5, "cannot use the database: ")

    if url.startswith("sqlite"):
        assert not (tmp_path / "no").exists()


# --- the installed executable --------------------------------------------------------------------------
# Each run starts a Python process (most of a second), so independent runs are started together.


def start(home: Path, *args: str, **settings: str) -> subprocess.Popen:
    """Start the installed `boomerang` on a SQLite database in `home`, with only our settings."""
    home.mkdir(exist_ok=True)
    env = {name: value for name, value in os.environ.items() if not name.startswith("BOOMERANG_")}
    env.update(
        BOOMERANG_DATABASE_URL=f"sqlite:///{home / 'platform.db'}",
        BOOMERANG_PATHS_VAR_DIR=str(home / "var"),
        BOOMERANG_SECURITY_SECRET_KEY=SECRET,
    )
    env.update(settings)
    return subprocess.Popen(
        [str(BOOMERANG), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=home,
    )


def finish(process: subprocess.Popen, stdin: str = "") -> SimpleNamespace:
    try:
        out, err = process.communicate(stdin, timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return SimpleNamespace(code=process.returncode, out=out, err=err)


def boomerang(home: Path, *args: str, stdin: str = "", **settings: str) -> SimpleNamespace:
    return finish(start(home, *args, **settings), stdin)


def test_executable_upgrades_then_provisions(tmp_path):
    assert ok(boomerang(tmp_path, "db", "upgrade")) == f"schema at {HEAD}\n"
    assert ok(boomerang(tmp_path, "account", "create", "alice", "--currency", "USD")).startswith("account alice")
    ok(boomerang(tmp_path, "account", "set-pin", "alice", stdin="4321\n"))

    show, negative, ghost, again = [
        finish(process)
        for process in [
            start(tmp_path, "account", "show", "alice"),
            start(tmp_path, "account", "topup", "alice", "-5"),
            start(tmp_path, "account", "show", "ghost"),
            start(tmp_path, "account", "create", "alice", "--currency", "USD"),
        ]
    ]
    shown = ok(show)
    assert "pin\tset\n" in shown and "4321" not in shown
    failed(negative, 2, "must not be negative")
    failed(ghost, 3, "no account 'ghost'")
    failed(again, 4, "an account 'alice' already exists")

    engine = create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    try:
        with engine.connect() as connection:
            digest, balance = connection.execute(select(Account.pin_digest, Account.balance)).one()
    finally:
        engine.dispose()
    assert digest == security.pin_digest(SECRET.encode(), "4321")  # keyed with BOOMERANG_SECURITY_SECRET_KEY
    assert str(balance) == "0.000000"  # the refused top-up of -5 moved nothing


def test_executable_exit_codes_for_what_cannot_run(tmp_path):
    runs = {
        "unmigrated": start(tmp_path / "unmigrated", "account", "list"),
        "sip": start(tmp_path / "sip", "account", "list", BOOMERANG_SIP_LISTEN="bogus"),
        "url": start(tmp_path / "url", "db", "upgrade", BOOMERANG_DATABASE_URL="mysql+pymysql://root@127.0.0.1:port/x"),
        "unknown": start(tmp_path / "unknown", "db", "upgrade", BOOMERANG_SIP_LISTN="127.0.0.1:5060"),
        "no command": start(tmp_path / "no command"),
        "no action": start(tmp_path / "no action", "account"),
        "bad command": start(tmp_path / "bad command", "frobnicate"),
        "help": start(tmp_path / "help", "--help"),
    }
    results = {name: finish(process) for name, process in runs.items()}

    # A database without the schema: 5, and the one thing to do about it.
    unmigrated = results.pop("unmigrated")
    assert (unmigrated.code, unmigrated.out) == (5, "")
    assert unmigrated.err == f"boomerang: error: {NOT_MIGRATED}\n"
    assert table_names(f"sqlite:///{tmp_path / 'unmigrated' / 'platform.db'}") == []
    # A bad setting: 5, one line naming the setting and where it came from.
    failed(results.pop("sip"), 5, "configuration: sip.listen = 'bogus'", "BOOMERANG_SIP_LISTEN", "expected host:port")
    failed(results.pop("url"), 5, "configuration: database.url", "BOOMERANG_DATABASE_URL", "not a valid URL")
    failed(results.pop("unknown"), 5, "unknown setting in environment variable BOOMERANG_SIP_LISTN")
    # Usage errors: 2, with argparse's usage line.
    for name, fragment in [
        ("no command", "the following arguments are required: COMMAND"),
        ("no action", "the following arguments are required: ACTION"),
        ("bad command", "invalid choice: 'frobnicate'"),
    ]:
        result = results.pop(name)
        assert result.code == 2, (name, result)
        assert result.err.startswith("usage: boomerang") and fragment in result.err, (name, result.err)
        assert result.out == ""
    help = results.pop("help")
    assert help.code == 0
    assert "Exit codes: 0 done, 1 internal error, 2 invalid input, 3 not found, 4 conflict" in " ".join(
        help.out.split()
    )
    assert results == {}
    for name in ["sip", "url", "unknown", "no command", "no action", "bad command", "help"]:
        assert not (tmp_path / name / "platform.db").exists(), name  # nothing ran on half a configuration
