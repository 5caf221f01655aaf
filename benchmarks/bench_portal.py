"""The portal under load: locust's portal scenario (loadtests/portal_locustfile.py), 200 simulated
customers against gunicorn on MariaDB; requests/s and p50/p99 per endpoint, and failures.

The users arrive at SPAWN_RATE per second and each signs in once (locust's -t counts from the start); the
figures are reset when all 200 are in (`--reset-stats`), so what is reported is the reads at 200
users, not the arrival and its sign-ins."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from boomerang import services
from boomerang.settings import load
from boomerang.store import migrate
from loadtests.seed_portal import seed
from tests.conftest import TEST_SECRET, mariadb_database

USERS = 200
SPAWN_RATE = 10  # users arriving per second: 20 s until all 200 are in
SECONDS = 30  # measured once all are in
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(context) -> None:
    os.environ.setdefault("TEST_MARIADB_URL", context.mariadb_url)
    databases = mariadb_database()
    url = next(databases)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            port = _free_port()
            environ = {
                "BOOMERANG_DATABASE_URL": url,
                "BOOMERANG_PORTAL_LISTEN": f"127.0.0.1:{port}",
                "BOOMERANG_SECURITY_SECRET_KEY": TEST_SECRET,
                "BOOMERANG_PATHS_VAR_DIR": scratch,
                "BOOMERANG_LOG_LEVEL": "warning",
            }
            settings = load(environ)
            migrate.upgrade(url)
            seed(url, USERS, 30)
            argv = [arg for arg in services.portal(settings).argv if arg != "--access-logfile=-"]
            server = subprocess.Popen(argv, cwd=ROOT, env=os.environ | environ, stdout=subprocess.DEVNULL)
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                prefix = Path(scratch) / "stats"
                subprocess.run(
                    [
                        str(Path(sys.executable).parent / "locust"),
                        "-f",
                        str(ROOT / "loadtests/portal_locustfile.py"),
                        "--headless",
                        "-u",
                        str(USERS),
                        "-r",
                        str(SPAWN_RATE),
                        "-t",
                        f"{USERS // SPAWN_RATE + SECONDS}s",
                        "--only-summary",
                        "--reset-stats",
                        "--host",
                        f"http://127.0.0.1:{port}",
                        "--csv",
                        str(prefix),
                    ],
                    cwd=ROOT,
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                rows = list(csv.DictReader(open(f"{prefix}_stats.csv")))
                failures = list(csv.DictReader(open(f"{prefix}_failures.csv")))
            finally:
                server.terminate()
                server.wait(10)
    finally:
        databases.close()
    print(f"{USERS} users, {SECONDS} s, gunicorn {settings.portal_workers} workers, MariaDB")
    print("| endpoint | requests | failures | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['Name']} | {row['Request Count']} | {row['Failure Count']} | {float(row['Requests/s']):.1f} "
            f"| {row['50%']} | {row['99%']} |"
        )
    for failure in failures:
        print(f"  failed: {failure['Method']} {failure['Name']}: {failure['Error']} ({failure['Occurrences']} times)")
